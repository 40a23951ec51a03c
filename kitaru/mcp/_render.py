"""Client objects as the JSON the MCP tools return: the same fields as the CLI's ``-o json``.

The field rendering is the CLI's (:func:`kitaru.cli._output.to_jsonable`); this
module only shapes what a tool returns around it and caps loaded values, so a
large checkpoint output cannot flood a model's context.
"""

from __future__ import annotations

import json
from typing import Any

from kitaru.cli._output import describe, to_jsonable

__all__ = ["artifact", "execution", "execution_summary", "loaded_value", "stack", "to_jsonable"]

MAX_VALUE_CHARS = 20_000  # about 5k tokens: enough for a summary or a small table, not a whole dataset


def execution(value: Any, *, with_result: bool = True) -> dict[str, Any]:
    """An :class:`~kitaru.client.Execution` with its calls and pending waits; ``result`` once it completed."""
    data: dict[str, Any] = to_jsonable(value)
    if with_result and value.status == "completed":
        data["result"] = loaded_value(value.result)
    return data


def execution_summary(value: Any) -> dict[str, Any]:
    """An execution as listed: without calls and waits, which a listing does not load."""
    data: dict[str, Any] = to_jsonable(value)
    data.pop("checkpoints", None)
    data.pop("pending_waits", None)
    return data


def artifact(ref: Any, *, load: bool) -> dict[str, Any]:
    """An :class:`~kitaru.client.ArtifactRef`; with ``load`` also its value (capped)."""
    data: dict[str, Any] = to_jsonable(ref)
    if load:
        data["value"] = loaded_value(ref.load)
    return data


def stack(value: Any, *, active: str | None = None) -> dict[str, Any]:
    """A stack with secret-looking storage options masked (as ``kitaru stack show``)."""
    from kitaru.cli._stacks import public_stack

    data: dict[str, Any] = public_stack(value)
    if active is not None:
        data["active"] = value.name == active
    return data


def loaded_value(load: Any) -> Any:
    """``load()`` as JSON-ready data; over :data:`MAX_VALUE_CHARS` a truncated text preview, and a failure as its message."""
    try:
        value = to_jsonable(load())
    except Exception as exc:  # noqa: BLE001 - a value that cannot be loaded here is reported, not fatal to the call
        return {"error": describe(exc)}
    text = json.dumps(value)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return {"truncated": True, "chars": len(text), "preview": text[:MAX_VALUE_CHARS]}
