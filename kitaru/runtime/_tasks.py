"""The Ray remote function of each checkpoint: created once per checkpoint and Ray session.

Its three returns are the value, the outcome and any large serialized payload (see
:mod:`kitaru.runtime._handoff`).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["remote_function"]

_lock = threading.Lock()
_remotes: weakref.WeakKeyDictionary[Any, tuple[str | None, Any]] = weakref.WeakKeyDictionary()


def remote_function(checkpoint: Any) -> Any:
    """The Ray remote function running ``checkpoint``'s attempts (a :class:`kitaru.Checkpoint`)."""
    from kitaru.runtime._ray import DEFAULT_CHECKPOINT_NUM_CPUS, session_key

    with _lock:
        session = session_key()
        cached = _remotes.get(checkpoint)
        if cached is not None and cached[0] == session:
            return cached[1]
        import ray

        from kitaru.runtime._attempt import run_task_attempt

        func = checkpoint.func

        def task(call: dict[str, Any], *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any], Any]:
            return run_task_attempt(func, call, args, kwargs)

        task.__name__ = task.__qualname__ = checkpoint.name
        options = {"num_cpus": DEFAULT_CHECKPOINT_NUM_CPUS, **checkpoint.ray_options}
        remote = ray.remote(task).options(num_returns=3, max_retries=0, retry_exceptions=False, **options)
        _remotes[checkpoint] = (session, remote)
        return remote
