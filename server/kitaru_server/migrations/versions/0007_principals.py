"""who created and who continued each execution; keys that may continue others' executions

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("created_by", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("continued_by", sa.JSON(), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("continue_others", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("continue_others")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("continued_by")
        batch.drop_column("created_by")
