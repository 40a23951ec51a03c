"""``KitaruClient``: observe executions and act on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitaru.client._artifacts import Artifacts
from kitaru.client._deployments import Deployment, Deployments
from kitaru.client._executions import Executions
from kitaru.client._llm_admin import ModelAlias, Models, SecretInfo, Secrets
from kitaru.client._models import (
    ArtifactRef,
    Attempt,
    CheckpointAttempt,
    CheckpointCall,
    Execution,
    ExecutionEvent,
    FailureInfo,
    LogEntry,
    PendingWait,
    Wait,
)
from kitaru.client._stacks import Stack, Stacks
from kitaru.client._statistics import ExecutionStatistics, ExecutionStatisticsGroup
from kitaru.contracts.statuses import CallStatus, ExecutionStatus, WaitStatus

if TYPE_CHECKING:
    from kitaru.config import Settings
    from kitaru.contracts.service import Service

SERVER_LAUNCHER = "kitaru.client._launcher:server_launcher"
"""What ``kitaru server start`` hands the server's UI actions (``module:factory``, called with the server's database URL)."""

__all__ = [
    "SERVER_LAUNCHER",
    "ArtifactRef",
    "Attempt",
    "CallStatus",
    "CheckpointAttempt",
    "CheckpointCall",
    "Deployment",
    "Execution",
    "ExecutionEvent",
    "ExecutionStatistics",
    "ExecutionStatisticsGroup",
    "ExecutionStatus",
    "FailureInfo",
    "KitaruClient",
    "LogEntry",
    "ModelAlias",
    "PendingWait",
    "SecretInfo",
    "Stack",
    "Wait",
    "WaitStatus",
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
    def service(self) -> Service:
        """The service this client reads and acts through: the embedded one, or the server's over HTTP."""
        from kitaru._service import connect_service

        return connect_service(self.service_url, self.api_key)

    @property
    def reads(self) -> Any:
        """What listing queries go through: the service, or plain SQLite reads of an embedded database."""
        from kitaru._service import connect_reads

        return connect_reads(self.service_url, self.api_key)

    def _settings(self) -> Settings:
        """The configuration, pointed at this client's server and key (or its database): where its drivers record."""
        import dataclasses

        from kitaru._service import is_remote
        from kitaru.config import resolve_settings

        settings = resolve_settings()
        if is_remote(self.service_url):
            return dataclasses.replace(settings, server_url=self.service_url, api_key=self.api_key)
        return dataclasses.replace(settings, server_url=None, database_url=self.service_url, api_key=self.api_key)
