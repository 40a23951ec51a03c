"""The records the service stores and the operations the runtime commits: one definition each.

Records cross processes as JSON (the HTTP API, Ray task results), so they are
typed dictionaries: the embedded service, the HTTP client and the runtime build
and read the same shapes, and a type checker holds them to these definitions.
Times are UNIX seconds (floats); ``status`` values are those of
:mod:`kitaru.contracts.statuses`.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "AttemptFinished",
    "AttemptRecord",
    "CallRecord",
    "CallStarted",
    "EventEntry",
    "EventsOperation",
    "ExecutionRecord",
    "Failure",
    "LogEntryRecord",
    "LogsOperation",
    "MetadataOperation",
    "Operation",
    "StackRecord",
    "StoredValue",
    "ValuePreview",
    "WaitRecord",
]


class ValuePreview(TypedDict, total=False):
    """A bounded view of a stored value, computed by the runtime when it commits (the server never reads storage).

    ``kind`` is ``json`` (``text``), ``table`` (``columns``, ``rows``, ``total_rows``, ``total_columns``),
    ``tensor`` (``shape``, ``dtype``, ``text``) or ``note`` (``message``: why there is no preview).
    """

    kind: Literal["json", "table", "tensor", "note"]
    text: str
    message: str
    columns: list[dict[str, str]]
    rows: list[list[str]]
    total_rows: int
    total_columns: int
    shape: str
    dtype: str


class StoredValue(TypedDict):
    """Where a value is in storage (content-addressed) and how to load it."""

    uri: str
    sha256: str
    size: int
    serializer: str
    type_path: str
    preview: NotRequired[ValuePreview]


class Failure(TypedDict, total=False):
    """Why an execution or an attempt failed (``origin``: a :class:`kitaru.errors.FailureOrigin` value)."""

    type: str
    message: str
    traceback: str
    origin: str
    invocation_id: str | None


class ExecutionRecord(TypedDict):
    """One execution. ``checkpoints`` is present when read with its calls."""

    exec_id: str
    flow: str
    flow_ref: str
    flow_blob: StoredValue | None
    status: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    inputs: dict[str, Any] | None
    result: StoredValue | None
    failure: Failure | None
    original_exec_id: str | None
    metadata: dict[str, Any]
    stack: str | None
    settings: dict[str, Any]
    driver_id: str | None
    lease_expires_at: float | None
    run_attempt: int
    cancel_requested: bool
    checkpoints: NotRequired[list[CallRecord]]


class AttemptRecord(TypedDict):
    """One attempt of a checkpoint call."""

    number: int
    status: str
    started_at: float | None
    ended_at: float | None
    error: Failure | None


class CallRecord(TypedDict):
    """One checkpoint call, with its attempts and artifacts when read with an execution."""

    call_id: str
    exec_id: str
    invocation_id: str
    seq: int
    name: str
    checkpoint_type: str | None
    status: str
    cache_key: str | None
    output: StoredValue | None
    metadata: dict[str, Any]
    parent_call_ids: list[str]
    original_call_id: str | None
    inputs: dict[str, Any] | None
    created_at: float
    ended_at: float | None
    attempts: NotRequired[list[AttemptRecord]]
    artifacts: NotRequired[list[dict[str, Any]]]
    attempt_count: NotRequired[int]


class WaitRecord(TypedDict):
    """A wait for input of an execution."""

    exec_id: str
    name: str
    seq: int
    question: str | None
    schema: dict[str, Any] | None
    metadata: dict[str, Any]
    status: str
    value: Any
    created_at: float
    answered_at: float | None


class StackRecord(TypedDict):
    """A named bundle of compute backend, storage and container registry."""

    name: str
    backend: str
    storage_url: str | None
    storage_options: dict[str, Any]
    container_registry: str | None
    backend_options: dict[str, Any]
    created_at: NotRequired[float | None]
    updated_at: NotRequired[float | None]


class LogEntryRecord(TypedDict):
    """One captured log line (``source``: ``runner`` for the flow body, ``step`` for a checkpoint)."""

    exec_id: str
    timestamp: float
    level: str
    message: str
    source: str
    invocation_id: str | None
    attempt: int | None


class EventEntry(TypedDict):
    """One event (``checkpoint.*``, ``wait.*``, ``progress``, ...)."""

    exec_id: str
    timestamp: float
    kind: str
    invocation_id: str | None
    payload: dict[str, Any]


class _CallFields(TypedDict):
    exec_id: str
    call_id: str
    invocation_id: str
    seq: int
    name: str
    checkpoint_type: str | None
    parent_call_ids: list[str]
    created_at: float
    original_call_id: NotRequired[str | None]
    inputs: NotRequired[dict[str, Any] | None]
    cache_key: NotRequired[str | None]
    attempt: NotRequired[int]


class CallStarted(_CallFields):
    """Operation: an attempt of a call started (sent only for calls that outlast a short delay)."""

    op: Literal["call_started"]
    started_at: float


class AttemptFinished(_CallFields):
    """Operation: an attempt ended, or a call was settled without running (cached, replayed, overridden).

    ``final`` marks the call's own outcome (its last attempt, or a success); the output,
    artifacts, logs and events commit with it in one transaction.
    """

    op: Literal["attempt_finished"]
    status: str
    final: NotRequired[bool]
    started_at: NotRequired[float]
    ended_at: NotRequired[float]
    output: NotRequired[StoredValue | None]
    error: NotRequired[Failure | None]
    metadata: NotRequired[dict[str, Any]]
    artifacts: NotRequired[list[dict[str, Any]]]
    logs: NotRequired[list[LogEntryRecord]]
    events: NotRequired[list[EventEntry]]


class LogsOperation(TypedDict):
    """Operation: log lines of the flow body."""

    op: Literal["logs"]
    entries: list[LogEntryRecord]


class EventsOperation(TypedDict):
    """Operation: events of the flow body."""

    op: Literal["events"]
    entries: list[EventEntry]


class MetadataOperation(TypedDict):
    """Operation: metadata merged into the execution's."""

    op: Literal["metadata"]
    exec_id: str
    fields: dict[str, Any]


Operation = CallStarted | AttemptFinished | LogsOperation | EventsOperation | MetadataOperation
"""What the runtime commits through :meth:`kitaru.contracts.service.Service.apply` (each idempotent)."""
