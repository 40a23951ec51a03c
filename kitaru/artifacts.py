"""Functions for use inside flows and checkpoints: save, load, log, progress, and where we are."""

from __future__ import annotations

import time
from typing import Any

from kitaru._context import current_attempt, current_driver, require_checkpoint
from kitaru.errors import KitaruContextError, KitaruUsageError

__all__ = ["current_execution_id", "is_replay", "load", "log", "progress", "save"]


def save(name: str, value: Any, *, type: str = "output", tags: list[str] | None = None) -> None:
    """Store ``value`` as a named artifact of the current checkpoint call.

    Load it later, from anywhere, with ``kitaru.load(exec_id, name)``.
    """
    from kitaru.storage import store_value

    attempt = require_checkpoint("kitaru.save()")
    if name == attempt.invocation_id:
        raise KitaruUsageError(f"save() name {name!r} collides with the checkpoint's own output; choose another name.")
    meta = store_value(attempt.storage, value, what=f"artifact {name!r}")
    attempt.artifacts.append({"name": name, "kind": "saved", "meta": meta.to_dict(), "tags": [type, *(tags or [])]})


def load(exec_id: str, name: str) -> Any:
    """Load a named artifact (a ``save()`` name or a checkpoint's invocation id) of any execution."""
    from kitaru._service import connect_service
    from kitaru.config import resolve_settings
    from kitaru.storage import load_value, open_storage

    attempt = current_attempt.get()
    if attempt is not None:
        service = connect_service(attempt.service_url, attempt.settings.get("api_key"))
    else:
        settings = resolve_settings()
        service = connect_service(settings.service_url, settings.api_key)
    row = service.find_artifact(exec_id, name)
    stored = service.get_execution(row["exec_id"], with_calls=False)["settings"]
    return load_value(open_storage(stored["storage_url"], stored.get("storage_options") or {}), row)


def log(**fields: Any) -> None:
    """Attach metadata to the current checkpoint call, or to the execution in the flow body."""
    attempt = current_attempt.get()
    if attempt is not None:
        attempt.metadata.update(fields)
        return
    driver = current_driver.get()
    if driver is None:
        raise KitaruContextError("kitaru.log() must be called in a flow body or a checkpoint.")
    driver.log_metadata(fields)


def progress(message: str, *, percent: float | None = None, **fields: Any) -> None:
    """Record a live progress event on the current execution."""
    record_event("progress", {"message": message, "percent": percent, **fields}, what="kitaru.progress()")


def record_event(kind: str, payload: dict[str, Any], *, what: str) -> None:
    """Record an event of ``kind`` on the current checkpoint call, or on the execution in the flow body."""
    attempt = current_attempt.get()
    if attempt is not None:
        attempt.events.append(
            {
                "exec_id": attempt.exec_id,
                "timestamp": time.time(),
                "kind": kind,
                "invocation_id": attempt.invocation_id,
                "payload": payload,
            }
        )
        return
    driver = current_driver.get()
    if driver is None:
        raise KitaruContextError(f"{what} must be called in a flow body or a checkpoint.")
    driver.add_event(kind, payload)


def current_execution_id() -> str | None:
    """The id of the execution this code runs in, or ``None`` outside any."""
    attempt = current_attempt.get()
    if attempt is not None:
        return attempt.exec_id
    driver = current_driver.get()
    return driver.exec_id if driver is not None else None


def is_replay() -> bool:
    """Whether this code runs as part of a replay."""
    attempt = current_attempt.get()
    if attempt is not None:
        return attempt.is_replay
    driver = current_driver.get()
    return bool(driver and driver.is_replay)
