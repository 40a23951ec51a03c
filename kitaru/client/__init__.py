"""``KitaruClient``: observe executions and act on them."""

from __future__ import annotations

from typing import Any

from kitaru.client._artifacts import Artifacts
from kitaru.client._executions import Executions
from kitaru.client._llm_admin import ModelAlias, Models, SecretInfo, Secrets
from kitaru.client._models import ArtifactRef, Attempt, CheckpointCall, Execution, LogEntry, Wait

__all__ = ["ArtifactRef", "Attempt", "CheckpointCall", "Execution", "KitaruClient", "LogEntry", "ModelAlias", "SecretInfo", "Wait"]


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
        self.executions = Executions(self)
        self.artifacts = Artifacts(self)
        self.models = Models(self)
        self.secrets = Secrets(self)

    @property
    def _service(self) -> Any:
        from kitaru_server import service_for

        return service_for(self.database_url)
