"""artifacts name their digest's algorithm (BLAKE3 for new objects; earlier ones stay sha256)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.alter_column("sha256", new_column_name="digest", existing_type=sa.String(length=64), existing_nullable=False)
        batch.add_column(sa.Column("digest_algorithm", sa.String(length=16), nullable=False, server_default="sha256"))


def downgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("digest_algorithm")
        batch.alter_column("digest", new_column_name="sha256", existing_type=sa.String(length=64), existing_nullable=False)
