"""The database schema (SQLAlchemy Core); Alembic migrations create it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

executions = Table(
    "executions",
    metadata,
    Column("exec_id", String(128), primary_key=True),
    Column("flow", String(256), nullable=False),
    Column("flow_ref", String(512), nullable=False),
    Column("flow_blob", JSON),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("inputs", JSON),
    Column("result", JSON),
    Column("failure", JSON),
    Column("original_exec_id", String(128)),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("stack", String(128)),
    Column("settings", JSON, nullable=False),
    Column("driver_id", String(64)),
    Column("lease_expires_at", Float),
    Column("run_attempt", Integer, nullable=False, default=1),
    Column("cancel_requested", Boolean, nullable=False, default=False, server_default="0"),
    Column("created_by", JSON),  # the principal (API key id and name) that created it; null when embedded
    Column("continued_by", JSON),  # the principal that last resumed or retried it
    Index("ix_executions_flow_created", "flow", "created_at"),
    Index("ix_executions_status_created", "status", "created_at"),
    Index("ix_executions_created", "created_at"),
)

checkpoint_calls = Table(
    "checkpoint_calls",
    metadata,
    Column("call_id", String(64), primary_key=True),
    Column("exec_id", String(128), ForeignKey("executions.exec_id", ondelete="CASCADE"), nullable=False),
    Column("invocation_id", String(256), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("name", String(256), nullable=False),
    Column("checkpoint_type", String(64)),
    Column("status", String(16), nullable=False),
    Column("cache_key", String(64)),
    Column("output", JSON),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("parent_call_ids", JSON, nullable=False, default=list),
    Column("original_call_id", String(64)),
    Column("inputs", JSON),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float),
    UniqueConstraint("exec_id", "invocation_id", name="uq_calls_exec_invocation"),
    Index("ix_calls_cache_key", "cache_key"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(64), ForeignKey("checkpoint_calls.call_id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("error", JSON),
    Column("ray_task_id", String(64)),  # where the attempt ran: its Ray task, node and worker process
    Column("ray_node_id", String(64)),
    Column("worker_pid", Integer),
    UniqueConstraint("call_id", "number", name="uq_attempts_call_number"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("artifact_id", String(64), primary_key=True),
    Column("exec_id", String(128), ForeignKey("executions.exec_id", ondelete="CASCADE"), nullable=False),
    Column("invocation_id", String(256)),
    Column("name", String(256), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("uri", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("digest_algorithm", String(16), nullable=False, server_default="sha256"),
    Column("size", BigInteger, nullable=False),
    Column("serializer", String(64), nullable=False),
    Column("type_path", String(512), nullable=False),
    Column("tags", JSON, nullable=False, default=list),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("exec_id", "name", name="uq_artifacts_exec_name"),
)

logs = Table(
    "logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exec_id", String(128), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("invocation_id", String(256)),
    Column("attempt", Integer),
    Index("ix_logs_exec", "exec_id", "id"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exec_id", String(128), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("invocation_id", String(256)),
    Column("payload", JSON, nullable=False, default=dict),
    Index("ix_events_exec", "exec_id", "id"),
)

waits = Table(
    "waits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exec_id", String(128), ForeignKey("executions.exec_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("question", Text),
    Column("schema", JSON),
    Column("metadata", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False),
    Column("value", JSON),
    Column("created_at", Float, nullable=False),
    Column("answered_at", Float),
    UniqueConstraint("exec_id", "name", name="uq_waits_exec_name"),
)

models = Table(
    "models",
    metadata,
    Column("alias", String(128), primary_key=True),
    Column("model", String(256), nullable=False),
    Column("secret", String(128)),
    Column("base_url", Text),
    Column("is_default", Boolean, nullable=False, default=False, server_default="0"),
    Column("created_at", Float, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("keys", JSON, nullable=False, default=list),
    Column("ciphertext", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

stacks = Table(
    "stacks",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("backend", String(32), nullable=False),
    Column("storage_url", Text),
    Column("storage_options", JSON, nullable=False, default=dict),
    Column("container_registry", Text),
    Column("backend_options", JSON, nullable=False, default=dict),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("admin", Boolean, nullable=False, default=False, server_default="0"),
    Column("continue_others", Boolean, nullable=False, default=False, server_default="0"),
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("rotated_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
)

deployments = Table(
    "deployments",
    metadata,
    Column("flow", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("flow_ref", String(512), nullable=False),
    Column("snapshot", JSON, nullable=False),  # the stored code snapshot (uri, digest, size)
    Column("stack", String(128), nullable=False),
    Column("image", Text),
    Column("defaults", JSON, nullable=False, default=dict),
    Column("parameters", JSON, nullable=False, default=list),  # the flow's signature, to check inputs without its code
    Column("tags", JSON, nullable=False, default=list),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("flow", "version", name="pk_deployments"),
)
