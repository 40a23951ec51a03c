"""What clients see: executions, checkpoint calls, artifacts, waits and log entries."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from kitaru.errors import KitaruStateError

__all__ = ["ArtifactRef", "Attempt", "CheckpointCall", "Execution", "LogEntry", "Wait"]


def _time(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, tz=dt.UTC)


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
    storage_url: str = dataclasses.field(repr=False, default="")
    storage_options: dict[str, Any] = dataclasses.field(repr=False, default_factory=dict)

    def load(self) -> Any:
        """Load the value from storage (its digest checked)."""
        from kitaru.storage import load_value, open_storage

        return load_value(open_storage(self.storage_url, self.storage_options), dataclasses.asdict(self))

    @classmethod
    def from_record(cls, row: dict[str, Any], settings: dict[str, Any]) -> ArtifactRef:
        from kitaru.storage import record_digest

        fields = {f.name for f in dataclasses.fields(cls)} - {"storage_url", "storage_options", "digest", "digest_algorithm"}
        digest, algorithm = record_digest(row)  # servers before BLAKE3 send ``sha256``
        return cls(
            **{k: row[k] for k in fields},
            digest=digest,
            digest_algorithm=algorithm,
            storage_url=settings["storage_url"],
            storage_options=settings["storage_options"],
        )


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One attempt of a checkpoint call."""

    number: int
    status: str
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    error: dict[str, Any] | None
    node_id: str | None = None


@dataclasses.dataclass(frozen=True)
class CheckpointCall:
    """One call of a checkpoint in an execution."""

    call_id: str
    invocation_id: str
    name: str
    checkpoint_type: str | None
    status: str
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


@dataclasses.dataclass(frozen=True)
class Wait:
    """A durable wait for input."""

    name: str
    question: str | None
    schema: dict[str, Any] | None
    metadata: dict[str, Any]
    status: str
    created_at: dt.datetime | None

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> Wait:
        return cls(row["name"], row["question"], row["schema"], row["metadata"] or {}, row["status"], _time(row["created_at"]))


@dataclasses.dataclass(frozen=True)
class LogEntry:
    """One captured line of output or log record."""

    timestamp: dt.datetime
    level: str
    message: str
    source: str
    invocation_id: str | None
    attempt: int | None


@dataclasses.dataclass(frozen=True)
class Execution:
    """One run of a flow, with its calls in invocation order."""

    exec_id: str
    flow: str
    status: str
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    inputs: dict[str, Any]
    failure: dict[str, Any] | None
    checkpoints: list[CheckpointCall]
    pending_waits: list[Wait]
    original_exec_id: str | None
    metadata: dict[str, Any]
    stack: str | None
    dashboard_url: str | None
    _result: dict[str, Any] | None = dataclasses.field(default=None, repr=False)
    _settings: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

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
    def from_record(cls, record: dict[str, Any], *, waits: list[dict[str, Any]] | None = None) -> Execution:
        settings = record["settings"]
        calls = [
            CheckpointCall(
                call_id=c["call_id"],
                invocation_id=c["invocation_id"],
                name=c["name"],
                checkpoint_type=c["checkpoint_type"],
                status=c["status"],
                attempts=[
                    Attempt(a["number"], a["status"], _time(a["started_at"]), _time(a["ended_at"]), a["error"], a.get("node_id"))
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
            status=record["status"],
            created_at=_time(record["created_at"]),
            started_at=_time(record["started_at"]),
            ended_at=_time(record["ended_at"]),
            inputs=(record["inputs"] or {}).get("preview", {}),
            failure=record["failure"],
            checkpoints=calls,
            pending_waits=[Wait.from_record(w) for w in waits or []],
            original_exec_id=record["original_exec_id"],
            metadata=record["metadata"] or {},
            stack=record["stack"],
            dashboard_url=(record["metadata"] or {}).get("dashboard_url"),
            _result=record["result"],
            _settings=settings,
        )
