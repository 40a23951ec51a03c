"""How an attempt's output travels from its Ray task to storage (SPEC §3.3).

The checkpoint's task returns its value into Ray's object store and ends, freeing
its CPU slot; the runtime actor of the task's node writes the output and commits
the record. What the task hands over depends on the value:

- a large array, table or data frame (stored as Arrow IPC) is left in the object
  store: the actor reads it zero-copy and writes it, so nothing is serialized in
  the task and the bytes never leave the node;
- any other value is serialized in the task, where its code is importable
  (registered serializers, pydantic models and pickled classes need the user's
  modules, which one actor serving every driver of the node cannot import). The
  bytes travel with the outcome when they are small, else as a Ray object of
  their own, in the task's node's object store.

The hand-over itself (``handoff``) is a small dict carried by the outcome.
"""

from __future__ import annotations

from typing import Any

from kitaru.storage import Serialized, Storage, serialize, store_serialized, store_value
from kitaru.storage.serializers import arrow_writer, bytes_in_place

__all__ = ["INLINE_BYTES", "hand_over", "write_output"]

INLINE_BYTES = 64 * 1024
"""Serialized outputs up to this size travel inside the outcome (Ray inlines small objects in the call)."""


def hand_over(value: Any, *, what: str) -> tuple[dict[str, Any], Any]:
    """What a task returns besides its value so the runtime actor can store it: ``(handoff, payload)``.

    ``payload`` is the serialized bytes when they are too large to travel with the
    outcome, else ``None``.

    Raises:
        SerializationError: the value cannot be serialized (naming ``what``).
    """
    if bytes_in_place(value) > INLINE_BYTES and arrow_writer(value) is not None:
        return {"source": "value", "what": what}, None
    serialized = serialize(value, what=what)
    handoff = {
        "source": "inline",
        "what": what,
        "serializer": serialized.serializer,
        "type_path": serialized.type_path,
        "preview": serialized.preview,
    }
    data = serialized.data
    if memoryview(data).nbytes <= INLINE_BYTES:
        return {**handoff, "data": bytes(data)}, None
    return {**handoff, "source": "payload"}, _as_object(data)


def write_output(storage: Storage, handoff: dict[str, Any], source: Any) -> dict[str, Any]:
    """Store one handed-over output; ``source`` is the value or the payload the handoff names.

    Returns the output's record (see :class:`kitaru.storage.ObjectMeta`).
    """
    if handoff["source"] == "value":
        return store_value(storage, source, what=handoff["what"]).to_dict()
    data = handoff["data"] if handoff["source"] == "inline" else source
    serialized = Serialized(handoff["serializer"], handoff["type_path"], data, handoff["preview"])
    return store_serialized(storage, serialized).to_dict()


def _as_object(data: Any) -> Any:
    """Bytes-like data as a Ray object without a copy: Ray stores a numpy array's buffer out of band."""
    if isinstance(data, bytes):
        return data
    import numpy

    return numpy.frombuffer(data, dtype=numpy.uint8)
