"""The durable checkpoint a flow-body ``kitaru.llm`` call becomes (type ``llm_call``).

One :class:`~kitaru.checkpoint.Checkpoint` per call name, so invocation ids
follow the usual rule (``llm``, ``llm_2``, … or the ``name=`` given).
"""

from __future__ import annotations

import threading
from typing import Any

from kitaru._context import current_attempt
from kitaru.checkpoint import Checkpoint
from kitaru.errors import KitaruContextError

__all__ = ["llm_call", "llm_checkpoint"]

_checkpoints: dict[str, Checkpoint[str]] = {}
_lock = threading.Lock()


def llm_checkpoint(name: str) -> Checkpoint[str]:
    """The checkpoint named ``name`` that runs model calls (created once per process)."""
    with _lock:
        found = _checkpoints.get(name)
        if found is None:
            found = _checkpoints[name] = Checkpoint(llm_call, type="llm_call")
            found.name = name
        return found


def llm_call(
    prompt: str | list[dict[str, Any]],
    *,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    target: dict[str, Any],
    mock_response: str | None,
) -> str:
    """Body of the checkpoint: runs as a checkpoint attempt (a Ray task) and records on it.

    ``target`` was resolved by the driver; a call whose ``model`` no longer matches it (a replay's
    ``model`` override) is resolved again here.
    """
    from kitaru.llm._record import call_and_record
    from kitaru.llm._resolve import resolve_target

    attempt = current_attempt.get()
    if attempt is None:
        raise KitaruContextError("llm_call runs only as a checkpoint attempt; call kitaru.llm() instead.")
    if target.get("requested") != model:
        target = resolve_target(model, attempt.settings)
    return call_and_record(
        prompt,
        target=target,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        mock_response=mock_response,
        settings=attempt.settings,
        name=attempt.invocation_id,
        records=attempt.metadata.setdefault("llm_calls", []),
    )
