"""Storage of checkpoint outputs and artifacts: fsspec objects plus serializers."""

from __future__ import annotations

import dataclasses
from typing import Any

from kitaru.storage._digest import DEFAULT_ALGORITHM
from kitaru.storage._store import Storage, StoredObject, open_storage
from kitaru.storage.serializers import (
    SerializationError,
    Serializer,
    arrow_parts,
    bytes_in_place,
    dumps,
    loads,
    register_serializer,
    type_path_of,
)

__all__ = [
    "ObjectMeta",
    "SerializationError",
    "Serialized",
    "Serializer",
    "Storage",
    "StoredObject",
    "load_value",
    "open_storage",
    "record_digest",
    "register_serializer",
    "serialize",
    "store_serialized",
    "store_value",
]


LARGE_VALUE_BYTES = 64 * 1024 * 1024  # below this, serializing into memory first costs less than it saves


@dataclasses.dataclass(frozen=True)
class ObjectMeta:
    """Everything needed to load a stored value again (kept by the server)."""

    uri: str
    digest: str
    size: int
    serializer: str
    type_path: str
    digest_algorithm: str = DEFAULT_ALGORITHM
    preview: dict[str, Any] | None = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "uri": self.uri,
            "digest": self.digest,
            "digest_algorithm": self.digest_algorithm,
            "size": self.size,
            "serializer": self.serializer,
            "type_path": self.type_path,
        }
        if self.preview is not None:
            meta["preview"] = self.preview
        return meta

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ObjectMeta:
        """From a stored record; records written before BLAKE3 carry a ``sha256`` key instead of ``digest``."""
        digest, algorithm = record_digest(record)
        return cls(record["uri"], digest, record["size"], record["serializer"], record["type_path"], algorithm)


def record_digest(record: dict[str, Any]) -> tuple[str, str]:
    """``(digest, algorithm)`` of a stored object's record, old (``sha256``) or new (``digest``, ``digest_algorithm``)."""
    if record.get("digest"):
        return record["digest"], record.get("digest_algorithm") or DEFAULT_ALGORITHM
    return record["sha256"], "sha256"


def store_value(storage: Storage, value: Any, *, what: str = "value") -> ObjectMeta:
    """Serialize ``value`` and store it; ``what`` names it in errors.

    Large arrays, tables and data frames are written straight from their own memory as
    the Arrow IPC parts that make up the stored bytes (a serialized copy of a large value
    costs more than the write).
    """
    if bytes_in_place(value) >= LARGE_VALUE_BYTES:
        parts = arrow_parts(value)
        if parts is not None:
            return _meta(storage.put_parts(parts), "arrow", value)
    return store_serialized(storage, serialize(value, what=what))


@dataclasses.dataclass(frozen=True)
class Serialized:
    """A value turned into bytes, with what its record needs: serializer, type and preview."""

    serializer: str
    type_path: str
    data: Any  # a bytes-like object
    preview: dict[str, Any] | None = None


def serialize(value: Any, *, what: str = "value") -> Serialized:
    """Serialize ``value`` in memory (where its code is importable), ready for :func:`store_serialized`."""
    from kitaru.storage._preview import preview_of

    serializer, data = dumps(value, what=what)
    type_path = type_path_of(value)
    return Serialized(serializer, type_path, data, preview_of(value, serializer, type_path))


def store_serialized(storage: Storage, serialized: Serialized) -> ObjectMeta:
    """Store bytes made by :func:`serialize` (no code of the value's type is needed here)."""
    stored = storage.put(serialized.data)
    return ObjectMeta(
        stored.uri,
        stored.digest,
        stored.size,
        serialized.serializer,
        serialized.type_path,
        stored.algorithm,
        serialized.preview,
    )


def _meta(stored: StoredObject, serializer: str, value: Any) -> ObjectMeta:
    from kitaru.storage._preview import preview_of

    type_path = type_path_of(value)
    return ObjectMeta(
        stored.uri, stored.digest, stored.size, serializer, type_path, stored.algorithm, preview_of(value, serializer, type_path)
    )


def load_value(storage: Storage, meta: ObjectMeta | dict[str, Any]) -> Any:
    """Load and deserialize a stored value (its digest checked, BLAKE3 or sha256 as its record says)."""
    if isinstance(meta, dict):
        meta = ObjectMeta.from_record(meta)
    return loads(meta.serializer, storage.get(meta.uri, meta.digest, meta.digest_algorithm), meta.type_path)
