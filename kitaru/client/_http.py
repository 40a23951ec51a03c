"""The service layer over HTTP: :class:`HttpService` has the methods of ``KitaruService``, answering the same dicts.

``connect_service("https://…", api_key)`` returns one of these, so the client,
the driver and the runtime actor work unchanged against a Kitaru server.
What a runtime calls (batches, lease renewals, status changes, polls of its
waits and of cancellation, its calls and the cache) is idempotent and rides
out a server outage (see :mod:`kitaru.client._transport`); everything else
fails fast with one clear error.
Storage is never reached through the server: runtimes write it directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from kitaru.client._transport import Transport, segment
from kitaru.errors import KitaruUsageError

__all__ = ["HttpService", "close_http_services", "http_service"]

_PAGE = 1000  # the server's largest page
_LOG_PAGE = 10_000
_BATCH = 10_000  # the server's largest batch


class HttpService:
    """A Kitaru server's API, shaped like the in-process service (same method names, arguments and results)."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = Transport(self.url, api_key)

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def _get(self, path: str, **params: Any) -> Any:
        return self._http.request("GET", path, params=params)

    def _send(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        return self._http.request(method, path, json=body, params=params)

    def _runtime(self, method: str, path: str, body: Any = None) -> Any:
        """A runtime's idempotent request: retried through a server outage."""
        return self._http.request(method, path, json=body, retry=True)

    def _pages(self, path: str, limit: int, offset: int = 0, **params: Any) -> list[dict[str, Any]]:
        """``limit`` items from ``offset`` of a paginated list, in as many pages as it takes."""
        items: list[dict[str, Any]] = []
        while len(items) < limit:
            page = self._get(path, limit=min(_PAGE, limit - len(items)), offset=offset + len(items), **params)
            items += page["items"]
            if page["next_offset"] is None:
                break
        return items

    def _rows(self, path: str, limit: int | None, after_id: int, **params: Any) -> list[dict[str, Any]]:
        """Rows after ``after_id`` (logs, events), up to ``limit`` (``None``: all), by id cursor."""
        rows: list[dict[str, Any]] = []
        while limit is None or len(rows) < limit:
            size = _LOG_PAGE if limit is None else min(_LOG_PAGE, limit - len(rows))
            page = self._get(path, after_id=after_id, limit=size, **params)
            rows += page["items"]
            if page["next_after_id"] is None:
                break
            after_id = page["next_after_id"]
        return rows

    # --- executions ---------------------------------------------------------------------------

    def create_execution(self, record: dict[str, Any]) -> dict[str, Any]:
        """Insert a new execution (see ``KitaruService.create_execution``)."""
        return self._send("POST", "/executions", record)

    def get_execution(self, exec_id: str, *, with_calls: bool = True) -> dict[str, Any]:
        """One execution, with its calls when asked."""
        return self._get(f"/executions/{segment(exec_id)}", with_calls=with_calls)

    def list_executions(
        self, *, flow: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Executions, newest first."""
        return self._pages("/executions", limit, offset, flow=flow, status=status)

    def count_executions(self) -> int:
        """How many executions are recorded."""
        return self._get("/executions/count")["count"]

    def execution_counts(self) -> dict[str, int]:
        """How many executions are in each status."""
        return self._get("/executions/counts")

    def claim_execution(
        self, exec_id: str, driver_id: str, lease_seconds: float, *, from_statuses: Iterable[str]
    ) -> dict[str, Any]:
        """Become the execution's driver if its status is one of ``from_statuses``."""
        body = {"driver_id": driver_id, "lease_seconds": lease_seconds, "from_statuses": list(from_statuses)}
        return self._send("POST", f"/executions/{segment(exec_id)}/claim", body)

    def renew_lease(self, exec_id: str, driver_id: str, lease_seconds: float) -> bool:
        """Extend the driver's lease; ``False`` if the execution is no longer this driver's."""
        body = {"driver_id": driver_id, "lease_seconds": lease_seconds}
        return self._runtime("POST", f"/executions/{segment(exec_id)}/lease", body)["renewed"]

    def set_live_status(self, exec_id: str, driver_id: str, status: str) -> bool:
        """Switch a driven execution between ``running`` and ``waiting``."""
        body = {"driver_id": driver_id, "status": status}
        return self._runtime("POST", f"/executions/{segment(exec_id)}/live-status", body)["changed"]

    def finish_execution(
        self,
        exec_id: str,
        driver_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        failure: dict[str, Any] | None = None,
    ) -> bool:
        """Record the execution's end; ``False`` if ``driver_id`` no longer owns it."""
        body = {"driver_id": driver_id, "status": status, "result": result, "failure": failure}
        return self._runtime("POST", f"/executions/{segment(exec_id)}/finish", body)["finished"]

    def update_execution_metadata(self, exec_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the execution's metadata."""
        self._send("PATCH", f"/executions/{segment(exec_id)}/metadata", {"fields": fields})

    def request_cancel(self, exec_id: str) -> str:
        """Cancel at once (``"cancelled"``) or ask the driver (``"requested"``)."""
        return self._send("POST", f"/executions/{segment(exec_id)}/cancel")["outcome"]

    def cancel_requested(self, exec_id: str) -> bool:
        """Whether a client asked to cancel the execution."""
        return self._runtime("GET", f"/executions/{segment(exec_id)}/cancel-requested")["cancel_requested"]

    # --- checkpoint calls ---------------------------------------------------------------------

    def existing_calls(self, exec_id: str) -> dict[str, dict[str, Any]]:
        """Every call of the execution, by invocation id."""
        return self._runtime("GET", f"/executions/{segment(exec_id)}/calls")

    def find_cached_output(self, cache_key: str) -> dict[str, Any] | None:
        """The output of the newest completed call with ``cache_key``, if any."""
        return self._runtime("GET", f"/cache/{segment(cache_key)}")

    def apply(self, operations: Sequence[dict[str, Any]]) -> None:
        """Apply a batch of runtime operations; retried through transient failures (every operation is idempotent)."""
        operations = list(operations)
        for start in range(0, len(operations), _BATCH):
            self._runtime("POST", "/batches", {"operations": operations[start : start + _BATCH]})

    # --- waits --------------------------------------------------------------------------------

    def open_wait(self, exec_id: str, driver_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Record a pending wait (idempotent) and mark the execution waiting."""
        return self._runtime("POST", f"/executions/{segment(exec_id)}/waits", {"driver_id": driver_id, "record": record})

    def get_wait(self, exec_id: str, name: str) -> dict[str, Any]:
        """One wait of an execution."""
        return self._runtime("GET", f"/executions/{segment(exec_id)}/waits/{segment(name)}")

    def list_waits(self, exec_id: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """The execution's waits in the order they were opened."""
        return self._pages(f"/executions/{segment(exec_id)}/waits", 10**9, status=status)

    def answer_wait(self, exec_id: str, name: str, value: Any) -> dict[str, Any]:
        """Validate ``value`` against the wait's schema (on the server), then answer the wait."""
        return self._send("POST", f"/executions/{segment(exec_id)}/waits/{segment(name)}/input", {"value": value})

    def settle_wait(self, exec_id: str, name: str, *, status: str, value: Any = None) -> dict[str, Any]:
        """Answer (``answered``, validated) or abort (``aborted``) a pending wait; exactly one caller wins."""
        if status == "answered":
            return self.answer_wait(exec_id, name, value)
        if status == "aborted":
            return self._send("POST", f"/executions/{segment(exec_id)}/waits/{segment(name)}/abort")
        raise KitaruUsageError(f"a wait is settled as 'answered' or 'aborted', not {status!r}.")

    def suspend_execution(self, exec_id: str, driver_id: str, wait_name: str) -> bool:
        """Release the driver of an execution parked on ``wait_name``."""
        body = {"driver_id": driver_id, "wait": wait_name}
        return self._runtime("POST", f"/executions/{segment(exec_id)}/suspend", body)["suspended"]

    # --- artifacts, logs, events --------------------------------------------------------------

    def list_artifacts(
        self, *, exec_id: str | None = None, name: str | None = None, kind: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Artifacts, newest first."""
        return self._pages("/artifacts", limit, offset, exec_id=exec_id, name=name, kind=kind)

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        """One artifact by id."""
        return self._get(f"/artifacts/{segment(artifact_id)}")

    def find_artifact(self, exec_id: str, name: str) -> dict[str, Any]:
        """The artifact ``name`` of an execution."""
        return self._get(f"/executions/{segment(exec_id)}/artifacts/{segment(name)}")

    def get_logs(
        self,
        exec_id: str,
        *,
        invocation_id: str | None = None,
        source: str | None = None,
        limit: int | None = None,
        after_id: int = 0,
    ) -> list[dict[str, Any]]:
        """Log entries in the order they were written."""
        return self._rows(f"/executions/{segment(exec_id)}/logs", limit, after_id, invocation_id=invocation_id, source=source)

    def get_events(self, exec_id: str, *, after_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Events in the order they were recorded."""
        return self._rows(f"/executions/{segment(exec_id)}/events", limit, after_id)

    # --- models and secrets -------------------------------------------------------------------

    def register_model(
        self, alias: str, model: str, *, secret: str | None = None, base_url: str | None = None, default: bool = False
    ) -> dict[str, Any]:
        """Create or replace a model alias."""
        body = {"model": model, "secret": secret, "base_url": base_url, "default": default}
        return self._send("PUT", f"/models/{segment(alias)}", body)

    def list_models(self) -> list[dict[str, Any]]:
        """Every model alias, by name."""
        return self._pages("/models", 10**9)

    def get_model(self, alias: str) -> dict[str, Any] | None:
        """The alias, or ``None`` when it is not registered."""
        return self._get(f"/models/{segment(alias)}")

    def default_model(self) -> dict[str, Any] | None:
        """The default alias, if any."""
        return self._get("/default-model")

    def delete_model(self, alias: str) -> None:
        """Remove an alias."""
        self._send("DELETE", f"/models/{segment(alias)}")

    def set_secret(self, name: str, values: dict[str, str]) -> dict[str, Any]:
        """Create a secret or update some of its keys; returns its keys, not its values."""
        return self._send("PUT", f"/secrets/{segment(name)}", {"values": values})

    def get_secret(self, name: str) -> dict[str, Any]:
        """A secret's name, keys and timestamps."""
        return self._get(f"/secrets/{segment(name)}")

    def list_secrets(self) -> list[dict[str, Any]]:
        """Every secret's name, keys and timestamps."""
        return self._pages("/secrets", 10**9)

    def delete_secret(self, name: str) -> None:
        """Delete a secret."""
        self._send("DELETE", f"/secrets/{segment(name)}")

    def secret_values(self, name: str) -> dict[str, str]:
        """A secret's values (the server allows it to service-account and admin keys: runtimes)."""
        return self._get(f"/secrets/{segment(name)}/values")

    # --- stacks -------------------------------------------------------------------------------

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
    ) -> dict[str, Any]:
        """Store a stack (``replace=True`` overwrites one of that name)."""
        body = {
            "backend": backend,
            "storage_url": storage_url,
            "storage_options": storage_options,
            "container_registry": container_registry,
            "backend_options": backend_options,
        }
        return self._send("PUT", f"/stacks/{segment(name)}", body, replace=replace)

    def get_stack(self, name: str) -> dict[str, Any]:
        """One stored stack."""
        return self._get(f"/stacks/{segment(name)}")

    def list_stacks(self) -> list[dict[str, Any]]:
        """Every stored stack, by name."""
        return self._pages("/stacks", 10**9)

    def stack_credentials(self, name: str) -> dict[str, Any]:
        """Short-lived storage credentials scoped to the stack, brokered by the server."""
        return self._send("POST", f"/stacks/{segment(name)}/credentials")

    def delete_stack(self, name: str) -> None:
        """Delete a stored stack."""
        self._send("DELETE", f"/stacks/{segment(name)}")

    # --- deployments --------------------------------------------------------------------------

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
        """Register the next version of ``flow``."""
        body = {
            "flow_ref": flow_ref,
            "snapshot": snapshot,
            "stack": stack,
            "image": image,
            "defaults": defaults,
            "parameters": parameters,
            "tags": tags,
        }
        return self._send("POST", f"/deployments/{segment(flow)}", body)

    def list_deployments(self, flow: str | None = None) -> list[dict[str, Any]]:
        """Every deployment version (of ``flow``)."""
        return self._pages("/deployments", 10**9, flow=flow)

    def get_deployment(self, flow: str, *, version: int | None = None, tag: str | None = None) -> dict[str, Any]:
        """One version of ``flow``: by number, by tag, or the newest."""
        return self._get(f"/deployments/{segment(flow)}/resolve", version=version, tag=tag)

    def tag_deployment(self, flow: str, version: int, tag: str) -> dict[str, Any]:
        """Point ``tag`` at ``version`` of ``flow``."""
        return self._send("PUT", f"/deployments/{segment(flow)}/{int(version)}/tags/{segment(tag)}")

    def delete_deployment(self, flow: str, version: int) -> None:
        """Delete one version of ``flow``."""
        self._send("DELETE", f"/deployments/{segment(flow)}/{int(version)}")

    # --- API keys -----------------------------------------------------------------------------

    def create_api_key(
        self, name: str, *, kind: str = "user", admin: bool = False, continue_others: bool = False
    ) -> dict[str, Any]:
        """Create a key (admin keys only); the result's ``key`` is shown this once."""
        return self._send("POST", "/keys", {"name": name, "kind": kind, "admin": admin, "continue_others": continue_others})

    def list_api_keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Every key's public record."""
        return self._pages("/keys", 10**9, include_revoked=include_revoked)

    def get_api_key(self, key_id: str) -> dict[str, Any]:
        """One key's public record."""
        return self._get(f"/keys/{segment(key_id)}")

    def rotate_api_key(self, key_id: str) -> dict[str, Any]:
        """Replace a key's secret; the result's ``key`` is the new plain key."""
        return self._send("POST", f"/keys/{segment(key_id)}/rotate")

    def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key."""
        return self._send("DELETE", f"/keys/{segment(key_id)}")

    def verify_api_key(self, token: str) -> dict[str, Any] | None:
        """The public record of the live key ``token``, or ``None`` when the server refuses it."""
        try:
            return self._http.request("GET", "/auth/whoami", headers={"Authorization": f"Bearer {token}"})
        except KitaruUsageError:
            return None


_services: dict[tuple[str, str | None], HttpService] = {}
_lock = threading.Lock()


def http_service(url: str, api_key: str | None = None) -> HttpService:
    """The process's :class:`HttpService` for ``url`` and ``api_key`` (created once; its connections are pooled)."""
    key = (url.rstrip("/"), api_key)
    with _lock:
        service = _services.get(key)
        if service is None:
            service = _services[key] = HttpService(url, api_key)
        return service


def close_http_services() -> None:
    """Close and forget every cached :class:`HttpService` (tests, or before a fork)."""
    with _lock:
        services = list(_services.values())
        _services.clear()
    for service in services:
        service.close()
