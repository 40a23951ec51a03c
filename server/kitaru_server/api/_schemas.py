"""Request bodies: the shapes the service layer expects, checked before it sees them.

Bounds (string lengths, integer ranges) match the database columns, so a
value the database would refuse is a 422 here. Runtime operations keep any
extra top-level keys (the service ignores them); rows written as they are
(log and event entries) allow only their columns.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

_MAX_INT = 2**31 - 1
Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
DriverId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Short = Annotated[str, StringConstraints(max_length=64)]
Timestamp = Annotated[float, Field(ge=0, le=1e11)]
Count = Annotated[int, Field(ge=0, le=_MAX_INT)]
ExecutionStatus = Literal["pending", "running", "waiting", "interrupted", "completed", "failed", "cancelled"]
CallStatus = Literal["pending", "running", "completed", "cached", "replayed", "overridden", "failed", "cancelled"]
JSONObject = dict[str, Any]
MAX_METADATA_BYTES = 256 * 1024  # one metadata object, as JSON; an execution's merged metadata is bounded by the service


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata is {size} bytes as JSON, over the limit of {MAX_METADATA_BYTES}; store large values as artifacts "
            "(kitaru.save) and keep metadata small"
        )
    return value


Metadata = Annotated[JSONObject, AfterValidator(_bounded)]


class Body(BaseModel):
    """Every body: unknown fields are an error, and NaN/Infinity are not numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True, strict=True)

    def data(self) -> dict[str, Any]:
        """The fields that were sent, by their wire names."""
        return self.model_dump(exclude_unset=True, by_alias=True)


class StoredObject(BaseModel):
    """Where a value is stored (an output, a result, a saved artifact)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)
    uri: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    digest: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    digest_algorithm: Literal["blake3", "sha256"] | None = None
    sha256: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None  # clients before BLAKE3
    size: Annotated[int, Field(ge=0, le=2**53)]
    serializer: Short
    type_path: Annotated[str, StringConstraints(max_length=512)]

    @model_validator(mode="after")
    def _has_digest(self) -> StoredObject:
        if self.digest is None and self.sha256 is None:
            raise ValueError("a stored object needs its digest (digest and digest_algorithm)")
        return self


class ExecutionCreate(Body):
    exec_id: Id
    flow: Name
    flow_ref: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    flow_blob: StoredObject | None = None
    stack: Id | None = None
    settings: JSONObject
    inputs: JSONObject | None = None
    driver_id: DriverId | None = None
    lease_expires_at: Timestamp | None = None
    original_exec_id: Id | None = None
    metadata: Metadata | None = None


class Claim(Body):
    driver_id: DriverId
    lease_seconds: Annotated[float, Field(gt=0, le=1e6)]
    from_statuses: list[ExecutionStatus] = Field(max_length=8)


class Lease(Body):
    driver_id: DriverId
    lease_seconds: Annotated[float, Field(gt=0, le=1e6)]


class LiveStatus(Body):
    driver_id: DriverId
    status: Literal["running", "waiting"]


class Finish(Body):
    driver_id: DriverId
    status: Literal["completed", "failed", "cancelled"]
    result: StoredObject | None = None
    failure: JSONObject | None = None


class Suspend(Body):
    driver_id: DriverId
    wait: Name


class MetadataUpdate(Body):
    fields: Metadata


class WaitRecord(Body):
    name: Name
    seq: Count
    question: str | None = None
    schema_: JSONObject | None = Field(None, alias="schema")
    metadata: Metadata = Field(default_factory=dict)
    status: Literal["pending", "answered", "aborted"] | None = None
    value: Any = None
    answered_at: Timestamp | None = None


class OpenWait(Body):
    driver_id: DriverId
    record: WaitRecord


class WaitInput(Body):
    value: Any = Field(description="The input; validated against the wait's JSON Schema.")


class LogEntry(Body):
    exec_id: Id
    timestamp: Timestamp
    level: Annotated[str, StringConstraints(max_length=16)]
    message: str
    source: Annotated[str, StringConstraints(max_length=16)]
    invocation_id: Name | None = None
    attempt: Count | None = None


class EventEntry(Body):
    exec_id: Id
    timestamp: Timestamp
    kind: Short
    invocation_id: Name | None = None
    payload: JSONObject = Field(default_factory=dict)


class SavedArtifact(Body):
    name: Name
    kind: Literal["output", "saved", "prompt", "response"] = "saved"
    meta: StoredObject
    tags: list[str] | None = None


class _CallOperation(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)
    exec_id: Id
    call_id: DriverId
    invocation_id: Name
    seq: Count
    name: Name
    checkpoint_type: Short | None = None
    cache_key: Short | None = None
    output: StoredObject | None = None
    metadata: Metadata | None = None
    parent_call_ids: list[DriverId] | None = None
    original_call_id: DriverId | None = None
    inputs: JSONObject | None = None
    created_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    started_at: Timestamp | None = None
    attempt: Annotated[int, Field(ge=1, le=_MAX_INT)] | None = None
    events: list[EventEntry] = Field(default_factory=list)


class CallStarted(_CallOperation):
    op: Literal["call_started"]


class AttemptFinished(_CallOperation):
    op: Literal["attempt_finished"]
    status: CallStatus
    final: bool = True
    error: JSONObject | None = None
    artifacts: list[SavedArtifact] = Field(default_factory=list)
    logs: list[LogEntry] = Field(default_factory=list)


class LogsOperation(Body):
    op: Literal["logs"]
    entries: list[LogEntry]


class EventsOperation(Body):
    op: Literal["events"]
    entries: list[EventEntry]


class MetadataOperation(Body):
    op: Literal["metadata"]
    exec_id: Id
    fields: Metadata


Operation = Annotated[
    CallStarted | AttemptFinished | LogsOperation | EventsOperation | MetadataOperation, Field(discriminator="op")
]


class Batch(Body):
    operations: list[Operation] = Field(max_length=10_000, description="Applied in one transaction; each is idempotent.")

    def service_operations(self) -> list[dict[str, Any]]:
        """The operations as the service takes them (every row field present, so batched inserts line up)."""
        return [operation.model_dump(by_alias=True) for operation in self.operations]


class ModelRegistration(Body):
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    secret: Annotated[str, StringConstraints(max_length=128)] | None = None
    base_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    default: bool = False


class SecretValues(Body):
    values: dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], str] = Field(
        description="Key/value pairs to store (merged into the secret's existing keys)."
    )


class KeyCreate(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    kind: Literal["user", "service_account"] = "user"
    admin: bool = False
    continue_others: bool = Field(False, description="A user key that may resume, retry and replay others' executions.")


class StackDefinition(Body):
    backend: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "local"
    storage_url: Annotated[str, StringConstraints(max_length=4096)] | None = None
    storage_options: JSONObject | None = None
    container_registry: Annotated[str, StringConstraints(max_length=4096)] | None = None
    backend_options: JSONObject | None = None


class DeploymentCreate(Body):
    flow_ref: Annotated[str, StringConstraints(min_length=3, max_length=512)]
    snapshot: StoredObject
    stack: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    image: Annotated[str, StringConstraints(max_length=4096)] | None = None
    defaults: JSONObject | None = None
    parameters: list[JSONObject] | None = None
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] | None = None
