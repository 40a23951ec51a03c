"""``KitaruClient``: observe executions and act on them."""

from __future__ import annotations

from typing import Any

from kitaru.client._models import ArtifactRef, Attempt, CheckpointCall, Execution, LogEntry, Wait
from kitaru.errors import KitaruNotFoundError

__all__ = ["ArtifactRef", "Attempt", "CheckpointCall", "Execution", "KitaruClient", "LogEntry", "Wait"]


class KitaruClient:
    """Entry point for executions and artifacts.

    Embedded mode (the default) reads the database under ``KITARU_HOME``.
    """

    def __init__(self, server_url: str | None = None, api_key: str | None = None, *, database_url: str | None = None) -> None:
        from kitaru.config import resolve_settings
        from kitaru.errors import KitaruFeatureNotAvailableError

        if server_url is not None:
            raise KitaruFeatureNotAvailableError(
                "remote mode (server_url=) needs the Kitaru server, which this version does not include; "
                "use the embedded mode (no server_url) on this machine."
            )
        self.database_url = database_url or resolve_settings().database_url
        self.executions = _Executions(self)
        self.artifacts = _Artifacts(self)

    @property
    def _service(self) -> Any:
        from kitaru_server import service_for

        return service_for(self.database_url)


class _Executions:
    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def get(self, exec_id: str) -> Execution:
        """One execution with its calls. Raises :class:`KitaruNotFoundError`."""
        return Execution.from_record(self._client._service.get_execution(exec_id))

    def list(self, *, flow: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0) -> list[Execution]:
        """Executions, newest first (without their calls; use :meth:`get` for those)."""
        rows = self._client._service.list_executions(flow=flow, status=status, limit=limit, offset=offset)
        return [Execution.from_record(row) for row in rows]

    def latest(self, *, flow: str | None = None, status: str | None = None) -> Execution:
        """The newest execution (of ``flow``, in ``status``)."""
        rows = self._client._service.list_executions(flow=flow, status=status, limit=1)
        if not rows:
            what = " ".join(part for part in (f"of flow {flow!r}" if flow else "", f"with status {status!r}" if status else "") if part)
            raise KitaruNotFoundError(f"there is no execution {what}; start one with <flow>.run().".replace("  ", " "))
        return self.get(rows[0]["exec_id"])

    def resume(self, exec_id: str) -> Any:
        """Continue an interrupted execution from its last committed call, in this process.

        Returns a :class:`~kitaru.FlowHandle`.
        """
        from kitaru.runtime._executions import resume_execution

        return resume_execution(exec_id)

    def logs(self, exec_id: str, *, checkpoint: str | None = None, source: str | None = None, limit: int | None = None) -> list[LogEntry]:
        """Captured stdout, stderr and logging of the flow body (``runner``) and checkpoints (``step``)."""
        service = self._client._service
        service.get_execution(exec_id, with_calls=False)
        rows = service.get_logs(exec_id, invocation_id=checkpoint, source=source, limit=limit)
        from kitaru.client._models import _time

        return [LogEntry(_time(r["timestamp"]), r["level"], r["message"], r["source"], r["invocation_id"], r["attempt"]) for r in rows]

    def events(self, exec_id: str, *, since: int = 0) -> list[dict[str, Any]]:
        """Recorded events (``checkpoint.started/returned/failed``, ``progress``) after id ``since``."""
        return self._client._service.get_events(exec_id, after_id=since)


class _Artifacts:
    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def list(self, *, exec_id: str | None = None, name: str | None = None, kind: str | None = None, limit: int = 200) -> list[ArtifactRef]:
        """Artifacts, newest first."""
        rows = self._client._service.list_artifacts(exec_id=exec_id, name=name, kind=kind, limit=limit)
        return [self._ref(row) for row in rows]

    def get(self, artifact_id: str) -> ArtifactRef:
        """One artifact by id; ``.load()`` it."""
        return self._ref(self._client._service.get_artifact(artifact_id))

    def find(self, exec_id: str, name: str) -> ArtifactRef:
        """The artifact ``name`` (a ``save()`` name or an invocation id) of an execution."""
        return self._ref(self._client._service.find_artifact(exec_id, name))

    def _ref(self, row: dict[str, Any]) -> ArtifactRef:
        settings = self._client._service.get_execution(row["exec_id"], with_calls=False)["settings"]
        return ArtifactRef.from_record(row, settings)
