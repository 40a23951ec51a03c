"""The service protocol: what the embedded service (``kitaru_server.KitaruService``) and the HTTP
client (``kitaru.client``'s ``HttpService``) both implement, operation for operation.

:class:`RuntimeService` is the part a driver and its Ray tasks use; :class:`Service`
adds what clients read and administer. A conformance suite runs the same tests
against SQLite, PostgreSQL and the HTTP client, and a unit test holds both
implementations to these signatures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from kitaru.contracts.records import (
    CallRecord,
    EventEntry,
    ExecutionRecord,
    Failure,
    LogEntryRecord,
    Operation,
    StackRecord,
    StoredValue,
    WaitRecord,
)

__all__ = ["RuntimeService", "Service"]


@runtime_checkable
class RuntimeService(Protocol):
    """The operations a driver commits: its execution's lease and status, calls, waits."""

    def create_execution(self, record: dict[str, Any]) -> ExecutionRecord:
        """Insert a new execution leased to ``record['driver_id']`` (``KitaruConflictError`` if the id exists)."""
        ...

    def get_execution(self, exec_id: str, *, with_calls: bool = True) -> ExecutionRecord:
        """One execution (``KitaruNotFoundError`` if none), with its calls when asked."""
        ...

    def claim_execution(
        self, exec_id: str, driver_id: str, lease_seconds: float, *, from_statuses: Iterable[str]
    ) -> ExecutionRecord:
        """Make ``driver_id`` the driver if the status is one of ``from_statuses`` (``KitaruStateError`` otherwise)."""
        ...

    def renew_lease(self, exec_id: str, driver_id: str, lease_seconds: float) -> bool:
        """Extend the driver's lease; ``False`` if the execution is no longer this driver's."""
        ...

    def set_live_status(self, exec_id: str, driver_id: str, status: str) -> bool:
        """Switch a driven execution between ``running`` and ``waiting``."""
        ...

    def finish_execution(
        self, exec_id: str, driver_id: str, status: str, *, result: StoredValue | None = None, failure: Failure | None = None
    ) -> bool:
        """Record the execution's end; ``False`` if ``driver_id`` no longer owns it."""
        ...

    def update_execution_metadata(self, exec_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the execution's metadata."""
        ...

    def request_cancel(self, exec_id: str) -> str:
        """``"cancelled"`` at once when no driver holds it, else ``"requested"`` (its driver stops)."""
        ...

    def cancel_requested(self, exec_id: str) -> bool:
        """Whether a cancel was requested for the driven execution."""
        ...

    def existing_calls(self, exec_id: str) -> dict[str, CallRecord]:
        """Every call of the execution by invocation id, with ``attempt_count`` (used to resume)."""
        ...

    def find_cached_output(self, cache_key: str) -> dict[str, Any] | None:
        """``{"output", "call_id"}`` of the newest completed call with ``cache_key``, if any."""
        ...

    def apply(self, operations: Sequence[Operation]) -> None:
        """Apply runtime operations in one transaction (a group commit); each is idempotent."""
        ...

    def open_wait(self, exec_id: str, driver_id: str, record: dict[str, Any]) -> WaitRecord:
        """Record a pending wait (idempotent by name) and mark the execution waiting."""
        ...

    def get_wait(self, exec_id: str, name: str) -> WaitRecord:
        """One wait (``KitaruNotFoundError`` naming the pending ones)."""
        ...

    def list_waits(self, exec_id: str, *, status: str | None = None) -> list[WaitRecord]:
        """The execution's waits, in the order they were opened."""
        ...

    def suspend_execution(self, exec_id: str, driver_id: str, wait_name: str) -> bool:
        """Release the driver of an execution parked on ``wait_name``; ``False`` if the wait was settled meanwhile."""
        ...

    def get_stack(self, name: str) -> StackRecord:
        """One stack (``KitaruNotFoundError`` naming ``kitaru stack list``)."""
        ...

    def get_deployment(self, flow: str, *, version: int | None = None, tag: str | None = None) -> dict[str, Any]:
        """One deployed version of ``flow``: by number, by tag, or the newest (an invoked driver loads its snapshot)."""
        ...

    def get_model(self, alias: str) -> dict[str, Any] | None:
        """A registered model alias."""
        ...

    def default_model(self) -> dict[str, Any] | None:
        """The default model alias."""
        ...

    def secret_values(self, name: str) -> dict[str, str]:
        """A secret's decrypted values (for a model's provider key)."""
        ...

    def close(self) -> None:
        """Release connections (the service stays usable: they reopen on demand)."""
        ...


@runtime_checkable
class Service(RuntimeService, Protocol):
    """Everything: the runtime's operations and what clients read and administer."""

    def list_executions(
        self, *, flow: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[ExecutionRecord]:
        """Executions, newest first."""
        ...

    def count_executions(self) -> int:
        """How many executions there are."""
        ...

    def execution_counts(self) -> dict[str, int]:
        """Executions by status."""
        ...

    def answer_wait(self, exec_id: str, name: str, value: Any) -> ExecutionRecord:
        """Validate ``value`` against the wait's schema, then answer it."""
        ...

    def settle_wait(self, exec_id: str, name: str, *, status: str, value: Any = None) -> ExecutionRecord:
        """Answer or abort a pending wait (``KitaruConflictError`` if it was settled)."""
        ...

    def list_artifacts(
        self, *, exec_id: str | None = None, name: str | None = None, kind: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Artifacts (saved values and results), newest first."""
        ...

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        """One artifact."""
        ...

    def find_artifact(self, exec_id: str, name: str) -> dict[str, Any]:
        """An artifact of an execution by name (or a call's output by invocation id)."""
        ...

    def get_logs(
        self,
        exec_id: str,
        *,
        invocation_id: str | None = None,
        source: str | None = None,
        limit: int | None = None,
        after_id: int = 0,
    ) -> list[LogEntryRecord]:
        """Log entries in the order they were written."""
        ...

    def get_events(self, exec_id: str, *, after_id: int = 0, limit: int = 1000) -> list[EventEntry]:
        """Events in the order they were recorded."""
        ...

    def register_model(
        self, alias: str, model: str, *, secret: str | None = None, base_url: str | None = None, default: bool = False
    ) -> dict[str, Any]:
        """Register a model alias."""
        ...

    def list_models(self) -> list[dict[str, Any]]:
        """Model aliases."""
        ...

    def delete_model(self, alias: str) -> None:
        """Remove a model alias."""
        ...

    def set_secret(self, name: str, values: dict[str, str]) -> dict[str, Any]:
        """Store a secret (encrypted)."""
        ...

    def get_secret(self, name: str) -> dict[str, Any]:
        """A secret's keys (never its values)."""
        ...

    def list_secrets(self) -> list[dict[str, Any]]:
        """Secrets' names and keys."""
        ...

    def delete_secret(self, name: str) -> None:
        """Remove a secret."""
        ...

    def create_stack(
        self,
        name: str,
        *,
        backend: str = "local",
        storage_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
        container_registry: str | None = None,
        backend_options: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> StackRecord:
        """Store a stack."""
        ...

    def list_stacks(self) -> list[StackRecord]:
        """Stacks by name."""
        ...

    def delete_stack(self, name: str) -> None:
        """Remove a stack."""
        ...

    def create_deployment(
        self,
        flow: str,
        *,
        flow_ref: str,
        snapshot: dict[str, Any],
        stack: str,
        image: str | None = None,
        defaults: dict[str, Any] | None = None,
        parameters: list[dict[str, Any]] | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register the next version of ``flow`` (its code snapshot in storage, stack and defaults)."""
        ...

    def list_deployments(self, flow: str | None = None) -> list[dict[str, Any]]:
        """Every deployment version (of ``flow``)."""
        ...

    def tag_deployment(self, flow: str, version: int, tag: str) -> dict[str, Any]:
        """Point ``tag`` at ``version`` of ``flow``."""
        ...

    def delete_deployment(self, flow: str, version: int) -> None:
        """Delete one version of ``flow``."""
        ...

    def create_api_key(
        self, name: str, *, kind: str = "user", admin: bool = False, continue_others: bool = False
    ) -> dict[str, Any]:
        """A new API key (its secret is shown once); ``continue_others``: it may resume others' executions."""
        ...

    def list_api_keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """API keys (never their secrets)."""
        ...

    def get_api_key(self, key_id: str) -> dict[str, Any]:
        """One API key."""
        ...

    def rotate_api_key(self, key_id: str) -> dict[str, Any]:
        """A new secret for a key."""
        ...

    def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key."""
        ...

    def verify_api_key(self, token: str) -> dict[str, Any] | None:
        """The key a token belongs to, if it is valid."""
        ...
