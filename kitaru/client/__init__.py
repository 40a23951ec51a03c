"""``KitaruClient``: observe executions and act on them."""

from __future__ import annotations

from typing import Any

from kitaru.client._artifacts import Artifacts
from kitaru.client._deployments import Deployment, Deployments
from kitaru.client._executions import Executions
from kitaru.client._llm_admin import ModelAlias, Models, SecretInfo, Secrets
from kitaru.client._models import ArtifactRef, Attempt, CheckpointCall, Execution, LogEntry, Wait
from kitaru.client._stacks import Stack, Stacks

__all__ = [
    "ArtifactRef",
    "Attempt",
    "CheckpointCall",
    "Deployment",
    "Execution",
    "KitaruClient",
    "LogEntry",
    "ModelAlias",
    "SecretInfo",
    "Stack",
    "Wait",
]


class KitaruClient:
    """Entry point for executions and artifacts.

    Embedded mode (the default) reads the database under ``KITARU_HOME``.
    """

    def __init__(self, server_url: str | None = None, api_key: str | None = None, *, service_url: str | None = None) -> None:
        """Args:
        server_url: A Kitaru server (remote mode); default ``KITARU_SERVER_URL`` or ``kitaru.connect()``.
        api_key: Its API key; default ``KITARU_API_KEY``.
        service_url: Internal: a database URL or server URL to use as is.
        """
        from kitaru.config import resolve_settings

        if service_url is None:
            settings = resolve_settings()
            service_url = server_url or settings.service_url
            api_key = api_key if api_key is not None else settings.api_key
        self.service_url = service_url
        self.api_key = api_key
        self.executions = Executions(self)
        self.artifacts = Artifacts(self)
        self.models = Models(self)
        self.secrets = Secrets(self)
        self.stacks = Stacks(self)
        self.deployments = Deployments(self)

    @property
    def _service(self) -> Any:
        from kitaru._service import connect_service

        return connect_service(self.service_url, self.api_key)
