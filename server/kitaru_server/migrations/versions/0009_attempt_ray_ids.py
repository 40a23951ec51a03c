"""where each attempt ran on Ray: its task id, node id and worker pid

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("ray_task_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("ray_node_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("worker_pid", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("worker_pid")
        batch.drop_column("ray_node_id")
        batch.drop_column("ray_task_id")
