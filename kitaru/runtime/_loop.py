"""The driver's event loop: one long-lived thread per process runs every call's coroutine."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def runtime_loop() -> asyncio.AbstractEventLoop:
    """The running background loop (started on first use)."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="kitaru-runtime-loop", daemon=True).start()
            _loop = loop
        return _loop


def spawn(coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run ``coroutine`` on the runtime loop; returns a thread-safe future."""
    return asyncio.run_coroutine_threadsafe(coroutine, runtime_loop())
