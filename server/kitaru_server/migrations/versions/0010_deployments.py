"""deployments: versioned snapshots of flows, with tags

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("flow", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("flow_ref", sa.String(length=512), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("stack", sa.String(length=128), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("defaults", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("flow", "version", name="pk_deployments"),
    )


def downgrade() -> None:
    op.drop_table("deployments")
