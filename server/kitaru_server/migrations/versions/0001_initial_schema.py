"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 15:26:39.092974
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("exec_id", sa.String(length=128), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("invocation_id", sa.String(length=256), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_exec", ["exec_id", "id"], unique=False)

    op.create_table(
        "executions",
        sa.Column("exec_id", sa.String(length=128), nullable=False),
        sa.Column("flow", sa.String(length=256), nullable=False),
        sa.Column("flow_ref", sa.String(length=512), nullable=False),
        sa.Column("flow_blob", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("failure", sa.JSON(), nullable=True),
        sa.Column("original_exec_id", sa.String(length=128), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("stack", sa.String(length=128), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("driver_id", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("run_attempt", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("exec_id"),
    )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.create_index("ix_executions_created", ["created_at"], unique=False)
        batch_op.create_index("ix_executions_flow_created", ["flow", "created_at"], unique=False)
        batch_op.create_index("ix_executions_status_created", ["status", "created_at"], unique=False)

    op.create_table(
        "logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("exec_id", sa.String(length=128), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("invocation_id", sa.String(length=256), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.create_index("ix_logs_exec", ["exec_id", "id"], unique=False)

    op.create_table(
        "artifacts",
        sa.Column("artifact_id", sa.String(length=64), nullable=False),
        sa.Column("exec_id", sa.String(length=128), nullable=False),
        sa.Column("invocation_id", sa.String(length=256), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("serializer", sa.String(length=64), nullable=False),
        sa.Column("type_path", sa.String(length=512), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["exec_id"], ["executions.exec_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("artifact_id"),
        sa.UniqueConstraint("exec_id", "name", name="uq_artifacts_exec_name"),
    )
    op.create_table(
        "checkpoint_calls",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("exec_id", sa.String(length=128), nullable=False),
        sa.Column("invocation_id", sa.String(length=256), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("checkpoint_type", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("parent_call_ids", sa.JSON(), nullable=False),
        sa.Column("original_call_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["exec_id"], ["executions.exec_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id"),
        sa.UniqueConstraint("exec_id", "invocation_id", name="uq_calls_exec_invocation"),
    )
    with op.batch_alter_table("checkpoint_calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_cache_key", ["cache_key"], unique=False)

    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["checkpoint_calls.call_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "number", name="uq_attempts_call_number"),
    )


def downgrade() -> None:
    op.drop_table("attempts")
    with op.batch_alter_table("checkpoint_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_cache_key")

    op.drop_table("checkpoint_calls")
    op.drop_table("artifacts")
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.drop_index("ix_logs_exec")

    op.drop_table("logs")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_status_created")
        batch_op.drop_index("ix_executions_flow_created")
        batch_op.drop_index("ix_executions_created")

    op.drop_table("executions")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_exec")

    op.drop_table("events")
