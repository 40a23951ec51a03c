"""Cache keys: checkpoint import path, its source code, its inputs and the storage.

A change to a checkpoint's own source changes its key, so edited code never
reuses stale outputs.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import Any

from kitaru.storage import dumps


@functools.lru_cache(maxsize=1024)
def source_hash(fn: Callable[..., Any]) -> str:
    """sha256 of the function's own source (its bytecode when the source is unavailable)."""
    try:
        source = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        source = code.co_code if code is not None else repr(fn).encode()
    return hashlib.sha256(source).hexdigest()


def cache_key(import_path: str, fn: Callable[..., Any], inputs: Any, storage_url: str) -> str:
    """The cache key of one call; ``inputs`` has upstream futures replaced by their output digests."""
    _, data = dumps(inputs, what="the checkpoint's inputs")
    digest = hashlib.sha256()
    for part in (import_path.encode(), source_hash(fn).encode(), memoryview(data).cast("B"), storage_url.encode()):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()
