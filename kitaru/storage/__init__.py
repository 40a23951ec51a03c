"""Storage of checkpoint outputs and artifacts: fsspec objects plus serializers."""

from __future__ import annotations

import dataclasses
from typing import Any

from kitaru.storage._store import Storage, StoredObject, open_storage
from kitaru.storage.serializers import (
    SerializationError,
    Serializer,
    arrow_tensor_parts,
    arrow_writer,
    dumps,
    loads,
    register_serializer,
    type_path_of,
)

__all__ = [
    "ObjectMeta",
    "SerializationError",
    "Serializer",
    "Storage",
    "StoredObject",
    "load_value",
    "open_storage",
    "register_serializer",
    "store_value",
]


LARGE_VALUE_BYTES = 64 * 1024 * 1024  # below this, serializing into memory first costs less than it saves


@dataclasses.dataclass(frozen=True)
class ObjectMeta:
    """Everything needed to load a stored value again (kept by the server)."""

    uri: str
    sha256: str
    size: int
    serializer: str
    type_path: str
    preview: dict[str, Any] | None = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "uri": self.uri,
            "sha256": self.sha256,
            "size": self.size,
            "serializer": self.serializer,
            "type_path": self.type_path,
        }
        if self.preview is not None:
            meta["preview"] = self.preview
        return meta


def store_value(storage: Storage, value: Any, *, what: str = "value") -> ObjectMeta:
    """Serialize ``value`` and store it; ``what`` names it in errors.

    Arrays and tables bound for local storage are written straight from their own
    memory into the file (a fresh copy of a large value costs more than the write).
    """
    from kitaru.storage._preview import preview_of

    type_path = type_path_of(value)
    if storage.is_local and getattr(value, "nbytes", 0) >= LARGE_VALUE_BYTES:
        parts = arrow_tensor_parts(value)
        if parts is not None:
            stored = storage.put_parts(parts)
            return ObjectMeta(*dataclasses.astuple(stored), "arrow", type_path, preview_of(value, "arrow", type_path))
        write = arrow_writer(value)
        if write is not None:
            stored = storage.put_written(write, what=what)
            return ObjectMeta(*dataclasses.astuple(stored), "arrow", type_path, preview_of(value, "arrow", type_path))
    serializer, data = dumps(value, what=what)
    stored = storage.put(data)
    return ObjectMeta(stored.uri, stored.sha256, stored.size, serializer, type_path, preview_of(value, serializer, type_path))


def load_value(storage: Storage, meta: ObjectMeta | dict[str, Any]) -> Any:
    """Load and deserialize a stored value (sha256 checked)."""
    if isinstance(meta, dict):
        meta = ObjectMeta(**{f.name: meta[f.name] for f in dataclasses.fields(ObjectMeta) if f.name in meta})
    return loads(meta.serializer, storage.get(meta.uri, meta.sha256), meta.type_path)
