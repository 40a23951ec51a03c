"""``kitaru.events.publish``: custom live events, as in Kitaru 0.21.

Published events are recorded with the execution beside Kitaru's own
(``checkpoint.*``, ``wait.*``, ``progress``) and stream to clients the same way:
``KitaruClient().executions.events(exec_id, kinds=[...])``, the CLI, the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = ["publish"]

_RESERVED_PREFIXES = ("checkpoint.", "wait.")


def publish(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    message: str | None = None,
    correlation_id: str | None = None,
    index: int | None = None,
    flush: bool = False,
) -> None:
    """Publish a custom event from a checkpoint or the flow body.

    Args:
        kind: The event's kind, e.g. ``"agent.thought"`` (``checkpoint.*`` and ``wait.*`` are Kitaru's own).
        payload: JSON-serializable data (recorded as ``payload["data"]``).
        message: A human-readable line (``payload["message"]``).
        correlation_id: Groups related events (``payload["correlation_id"]``).
        index: The event's position within its correlation group.
        flush: Accepted for 0.21 compatibility; events are committed with the call (or at once in the flow body).

    Raises:
        KitaruUsageError: a bad kind, payload or message.
        KitaruContextError: called outside a flow body or checkpoint.
    """
    from kitaru.artifacts import record_event

    if not isinstance(kind, str) or not kind.strip() or kind.startswith(_RESERVED_PREFIXES):
        raise KitaruUsageError(f"event kind must be a non-empty string not starting with {_RESERVED_PREFIXES}, not {kind!r}.")
    if payload is not None and not isinstance(payload, Mapping):
        raise KitaruUsageError("event payload must be a mapping when provided.")
    if message is not None and not isinstance(message, str):
        raise KitaruUsageError("event message must be a string when provided.")
    fields: dict[str, Any] = {}
    if message is not None:
        fields["message"] = message
    if payload:
        fields["data"] = dict(payload)
    if correlation_id is not None:
        fields["correlation_id"] = correlation_id
    if index is not None:
        fields["index"] = index
    record_event(kind, fields, what="kitaru.events.publish()")
