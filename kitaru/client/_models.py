"""What clients see: executions, checkpoint calls, artifacts, waits and log entries.

The objects carry Kitaru 0.21's names and shapes (``Execution.flow_name``,
``.pending_wait``, ``.failure`` as a :class:`FailureInfo`, ``Wait.wait_id``,
``ArtifactRef.producing_call``, ...) beside this version's own field names.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kitaru.contracts.statuses import CallStatus, ExecutionStatus, WaitStatus
from kitaru.errors import FailureOrigin, KitaruStateError

if TYPE_CHECKING:
    from kitaru.client import KitaruClient

__all__ = [
    "ArtifactRef",
    "Attempt",
    "CheckpointAttempt",
    "CheckpointCall",
    "Execution",
    "ExecutionEvent",
    "FailureInfo",
    "LogEntry",
    "PendingWait",
    "Wait",
]


def _time(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, tz=dt.UTC)


def _enum(kind: type[Any], value: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        return value


@dataclasses.dataclass(frozen=True)
class FailureInfo:
    """Why an execution, a call or an attempt failed: the original exception and where it came from."""

    type: str | None
    message: str
    traceback: str | None
    origin: FailureOrigin
    invocation_id: str | None = None

    @property
    def exception_type(self) -> str | None:
        """The original exception's type name (0.21's name for ``type``)."""
        return self.type

    @classmethod
    def from_record(cls, failure: Mapping[str, Any] | None) -> FailureInfo | None:
        if not failure:
            return None
        origin = failure.get("origin") or FailureOrigin.UNKNOWN.value
        return cls(
            type=failure.get("type"),
            message=str(failure.get("message") or ""),
            traceback=failure.get("traceback"),
            origin=FailureOrigin(origin) if origin in FailureOrigin._value2member_map_ else FailureOrigin.UNKNOWN,
            invocation_id=failure.get("invocation_id"),
        )


@dataclasses.dataclass(frozen=True)
class ArtifactRef:
    """A stored value: a checkpoint output (named by its invocation id) or a ``save()``."""

    artifact_id: str
    name: str
    kind: str
    exec_id: str
    invocation_id: str | None
    uri: str
    digest: str
    size: int
    serializer: str
    type_path: str
    digest_algorithm: str = "blake3"
    tags: list[str] = dataclasses.field(default_factory=list)
    storage_url: str = dataclasses.field(repr=False, default="")
    storage_options: dict[str, Any] = dataclasses.field(repr=False, default_factory=dict)

    @property
    def producing_call(self) -> str | None:
        """The invocation id of the checkpoint call that produced it (0.21's name)."""
        return self.invocation_id

    @property
    def direction(self) -> str:
        """Always ``"output"``: an artifact here is something a call produced."""
        return "output"

    @property
    def save_type(self) -> str:
        """The ``type=`` given to ``save()`` (``"output"`` for checkpoint outputs)."""
        return self.tags[0] if self.kind == "saved" and self.tags else "output"

    @property
    def metadata(self) -> dict[str, Any]:
        """Storage facts about the value (digest, size, serializer, type path, tags)."""
        return {
            "digest": self.digest,
            "digest_algorithm": self.digest_algorithm,
            "size": self.size,
            "serializer": self.serializer,
            "type_path": self.type_path,
            "tags": self.tags,
        }

    def load(self) -> Any:
        """Load the value from storage (its digest checked)."""
        from kitaru.storage import load_value, open_storage

        return load_value(open_storage(self.storage_url, self.storage_options), dataclasses.asdict(self))

    @classmethod
    def from_record(cls, row: dict[str, Any], settings: dict[str, Any]) -> ArtifactRef:
        from kitaru.storage import record_digest

        fields = {f.name for f in dataclasses.fields(cls)} - {
            "storage_url",
            "storage_options",
            "digest",
            "digest_algorithm",
            "tags",
        }
        digest, algorithm = record_digest(row)  # servers before BLAKE3 send ``sha256``
        return cls(
            **{k: row[k] for k in fields},
            digest=digest,
            digest_algorithm=algorithm,
            tags=list(row.get("tags") or []),
            storage_url=settings["storage_url"],
            storage_options=settings["storage_options"],
        )


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One attempt of a checkpoint call."""

    number: int
    status: CallStatus | str
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    error: dict[str, Any] | None
    ray_task_id: str | None = None
    ray_node_id: str | None = None
    worker_pid: int | None = None
    call_id: str = dataclasses.field(default="", repr=False)

    @property
    def attempt_id(self) -> str:
        """``<call_id>:<number>``, unique across executions."""
        return f"{self.call_id}:{self.number}"

    @property
    def failure(self) -> FailureInfo | None:
        """Why this attempt failed, if it did."""
        return FailureInfo.from_record(self.error)

    @property
    def metadata(self) -> dict[str, Any]:
        """Nothing is recorded per attempt beyond its fields; kept for 0.21's shape."""
        return {}


CheckpointAttempt = Attempt  # 0.21's name


@dataclasses.dataclass(frozen=True)
class CheckpointCall:
    """One call of a checkpoint in an execution."""

    call_id: str
    invocation_id: str
    name: str
    checkpoint_type: str | None
    status: CallStatus | str
    attempts: list[Attempt]
    artifacts: list[ArtifactRef]
    metadata: dict[str, Any]
    parent_call_ids: list[str]
    original_call_id: str | None
    llm_calls: list[dict[str, Any]]
    inputs: dict[str, Any]
    created_at: dt.datetime | None
    ended_at: dt.datetime | None

    @property
    def output(self) -> ArtifactRef | None:
        """The call's output artifact, once committed."""
        return next((a for a in self.artifacts if a.kind == "output" and a.name == self.invocation_id), None)

    @property
    def started_at(self) -> dt.datetime | None:
        """When the call started (0.21's name for ``created_at``)."""
        return self.created_at

    @property
    def failure(self) -> FailureInfo | None:
        """Why the call failed: its last failed attempt's error (``None`` unless it failed)."""
        if self.status != CallStatus.FAILED:
            return None
        failed = [a for a in self.attempts if a.error]
        return failed[-1].failure if failed else None


@dataclasses.dataclass(frozen=True)
class Wait:
    """A durable wait for input."""

    name: str
    question: str | None
    schema: dict[str, Any] | None
    metadata: dict[str, Any]
    status: WaitStatus | str
    created_at: dt.datetime | None
    exec_id: str = dataclasses.field(default="", repr=False)

    @property
    def wait_id(self) -> str:
        """``<exec_id>:<name>``: identifies the wait across executions (answer it by ``name``)."""
        return f"{self.exec_id}:{self.name}"

    @property
    def entered_waiting_at(self) -> dt.datetime | None:
        """When the wait was opened (0.21's name for ``created_at``)."""
        return self.created_at

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> Wait:
        return cls(
            row["name"],
            row["question"],
            row["schema"],
            row["metadata"] or {},
            _enum(WaitStatus, row["status"]),
            _time(row["created_at"]),
            exec_id=row.get("exec_id") or "",
        )


PendingWait = Wait  # 0.21's name


@dataclasses.dataclass(frozen=True)
class LogEntry:
    """One captured line of output or log record."""

    timestamp: dt.datetime
    level: str
    message: str
    source: str
    invocation_id: str | None
    attempt: int | None

    @property
    def checkpoint_name(self) -> str | None:
        """The checkpoint call that wrote it (its invocation id; ``None`` for the flow body)."""
        return self.invocation_id


@dataclasses.dataclass(frozen=True)
class ExecutionEvent:
    """One recorded event: ``checkpoint.started/returned/failed``, ``wait.opened/answered``, ``progress`` or a published one."""

    id: int
    exec_id: str
    kind: str
    payload: dict[str, Any]
    timestamp: dt.datetime | None
    checkpoint_name: str | None

    @property
    def index(self) -> int:
        """The event's position in the execution's stream."""
        return self.id

    @property
    def cursor(self) -> str:
        """Where to continue reading after this event (``since=``)."""
        return str(self.id)

    @property
    def step_name(self) -> str | None:
        return self.checkpoint_name

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> ExecutionEvent:
        return cls(
            row["id"],
            row["exec_id"],
            row["kind"],
            row.get("payload") or {},
            _time(row.get("timestamp")),
            row.get("invocation_id"),
        )


@dataclasses.dataclass(frozen=True)
class Execution:
    """One run of a flow, with its calls in invocation order."""

    exec_id: str
    flow: str
    status: ExecutionStatus | str
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    inputs: dict[str, Any]
    failure: FailureInfo | None
    checkpoints: list[CheckpointCall]
    pending_waits: list[Wait]
    original_exec_id: str | None
    metadata: dict[str, Any]
    stack: str | None
    dashboard_url: str | None
    _result: dict[str, Any] | None = dataclasses.field(default=None, repr=False)
    _settings: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    _client: KitaruClient | None = dataclasses.field(default=None, repr=False, compare=False)

    # --- 0.21's names ------------------------------------------------------------------------

    @property
    def flow_name(self) -> str:
        return self.flow

    @property
    def stack_name(self) -> str | None:
        return self.stack

    @property
    def status_reason(self) -> str | None:
        """The failure's message, if the execution failed."""
        return self.failure.message if self.failure else None

    @property
    def pending_wait(self) -> Wait | None:
        """The first wait still expecting input, if any."""
        return self.pending_waits[0] if self.pending_waits else None

    @property
    def artifacts(self) -> list[ArtifactRef]:
        """Every artifact of its calls (outputs and ``save()``s), in call order."""
        return [artifact for call in self.checkpoints for artifact in call.artifacts]

    def list_checkpoints(self) -> list[CheckpointCall]:
        return list(self.checkpoints)

    def list_artifacts(self) -> list[ArtifactRef]:
        return list(self.artifacts)

    # --- acting on it ------------------------------------------------------------------------

    def _owner(self) -> KitaruClient:
        if self._client is None:
            from kitaru.client import KitaruClient

            return KitaruClient()
        return self._client

    def refresh(self) -> Execution:
        """This execution as it is now."""
        return self._owner().executions.get(self.exec_id)

    def retry(self) -> Execution:
        """Retry this failed execution (completed calls are reused); returns it once its driver runs."""
        self._owner().executions.retry(self.exec_id)
        return self.refresh()

    def resume(self) -> Execution:
        """Resume this interrupted, suspended or cancelled execution."""
        self._owner().executions.resume(self.exec_id)
        return self.refresh()

    def cancel(self) -> Execution:
        """Cancel this execution; returns once it is ``cancelled``."""
        return self._owner().executions.cancel(self.exec_id)

    def replay(self, *, at: str, **options: Any) -> Any:
        """Replay this execution from ``at`` (see :meth:`kitaru.client.Executions.replay`)."""
        return self._owner().executions.replay(self.exec_id, at=at, **options)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the execution is terminal; the flow's return value (as ``FlowHandle.wait``)."""
        from kitaru.flow import FlowHandle

        return FlowHandle(self.exec_id, self._owner()._settings()).wait(timeout)

    def _repr_html_(self) -> str:
        from kitaru._html import execution_html, ui_url

        return execution_html(self, ui_url(self._settings.get("service_url"), self.exec_id))

    def result(self) -> Any:
        """The flow's return value; :class:`KitaruStateError` unless the execution completed."""
        if self.status != "completed" or self._result is None:
            raise KitaruStateError(
                f"execution {self.exec_id!r} is {self.status}, so it has no result; wait for it to complete.",
                exec_id=self.exec_id,
                status=self.status,
            )
        from kitaru.storage import load_value, open_storage

        return load_value(open_storage(self._settings["storage_url"], self._settings["storage_options"]), self._result)

    @classmethod
    def from_record(
        cls, record: dict[str, Any], *, waits: Sequence[dict[str, Any]] | None = None, client: KitaruClient | None = None
    ) -> Execution:
        settings = record["settings"]
        calls = [
            CheckpointCall(
                call_id=c["call_id"],
                invocation_id=c["invocation_id"],
                name=c["name"],
                checkpoint_type=c["checkpoint_type"],
                status=_enum(CallStatus, c["status"]),
                attempts=[
                    Attempt(
                        a["number"],
                        _enum(CallStatus, a["status"]),
                        _time(a["started_at"]),
                        _time(a["ended_at"]),
                        a["error"],
                        a.get("ray_task_id"),
                        a.get("ray_node_id"),
                        a.get("worker_pid"),
                        call_id=c["call_id"],
                    )
                    for a in c["attempts"]
                ],
                artifacts=[ArtifactRef.from_record(a, settings) for a in c["artifacts"]],
                metadata=c["metadata"] or {},
                parent_call_ids=c["parent_call_ids"] or [],
                original_call_id=c["original_call_id"],
                llm_calls=(c["metadata"] or {}).get("llm_calls", []),
                inputs=c.get("inputs") or {},
                created_at=_time(c["created_at"]),
                ended_at=_time(c["ended_at"]),
            )
            for c in record.get("checkpoints", [])
        ]
        return cls(
            exec_id=record["exec_id"],
            flow=record["flow"],
            status=_enum(ExecutionStatus, record["status"]),
            created_at=_time(record["created_at"]),
            started_at=_time(record["started_at"]),
            ended_at=_time(record["ended_at"]),
            inputs=(record["inputs"] or {}).get("preview", {}),
            failure=FailureInfo.from_record(record["failure"]),
            checkpoints=calls,
            pending_waits=[Wait.from_record({"exec_id": record["exec_id"], **w}) for w in waits or []],
            original_exec_id=record["original_exec_id"],
            metadata=record["metadata"] or {},
            stack=record["stack"],
            dashboard_url=(record["metadata"] or {}).get("dashboard_url"),
            _result=record["result"],
            _settings=settings,
            _client=client,
        )
