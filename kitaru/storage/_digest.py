"""Content digests: BLAKE3 for every new object, sha256 for objects written by earlier versions."""

from __future__ import annotations

import hashlib
from typing import Any

from kitaru.errors import KitaruBackendError

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "digest_of", "new_hasher"]

DEFAULT_ALGORITHM = "blake3"
ALGORITHMS = ("blake3", "sha256")
_PARALLEL_BYTES = 8 * 1024 * 1024  # below this, BLAKE3's thread pool costs more than it saves


def new_hasher(algorithm: str = DEFAULT_ALGORITHM, *, parallel: bool = False) -> Any:
    """A fresh incremental hasher (``update``/``hexdigest``) for ``algorithm``.

    Args:
        algorithm: ``blake3`` or ``sha256``.
        parallel: Let BLAKE3 spread each large ``update`` over all cores (for one-shot digests;
            a hasher fed beside a write keeps to one thread).
    """
    if algorithm == "blake3":
        import blake3

        return blake3.blake3(max_threads=blake3.blake3.AUTO if parallel else 1)
    if algorithm == "sha256":
        return hashlib.sha256()
    raise KitaruBackendError(
        f"unknown digest algorithm {algorithm!r}; this record needs a newer Kitaru (known: {', '.join(ALGORITHMS)})."
    )


def digest_of(data: bytes | memoryview, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The hex digest of ``data``."""
    hasher = new_hasher(algorithm, parallel=memoryview(data).nbytes >= _PARALLEL_BYTES)
    hasher.update(data)
    return hasher.hexdigest()
