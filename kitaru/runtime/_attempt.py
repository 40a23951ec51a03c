"""One checkpoint attempt, as it runs inside a Ray worker (or inline in the driver).

The attempt never raises to Ray: it returns its value and an outcome recording
success or the error, the attempt's logs, metadata and saved artifacts. In a Ray
task the output is handed over to the node's runtime actor, which stores it (see
:mod:`kitaru.runtime._handoff`); inline, it is stored right here.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import traceback
from collections.abc import Callable
from typing import Any

from kitaru._context import AttemptContext, current_attempt
from kitaru._logcapture import LogSink, capture
from kitaru._values import map_nested
from kitaru.errors import FailureOrigin, KitaruBackendError
from kitaru.storage import SerializationError, Storage, open_storage, store_value


def run_attempt(
    fn: Callable[..., Any], call: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """Run ``fn`` once for the call described by ``call`` and store its output here; returns ``(value, outcome)``."""
    value, outcome, _ = _run(fn, call, args, kwargs, _store_here)
    return value, outcome


def run_task_attempt(
    fn: Callable[..., Any], call: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any], Any]:
    """Run ``fn`` once in a Ray task; the output is handed over to the runtime actor, which stores it.

    Returns ``(value, outcome, payload)``: the outcome carries the hand-over (see
    :mod:`kitaru.runtime._handoff`), the payload any serialized bytes too large for it.
    """
    return _run(fn, call, args, kwargs, _hand_over)


def _store_here(storage: Storage, value: Any, what: str) -> tuple[dict[str, Any], Any]:
    return {"output": store_value(storage, value, what=what).to_dict()}, None


def _hand_over(_storage: Storage, value: Any, what: str) -> tuple[dict[str, Any], Any]:
    from kitaru.runtime._handoff import hand_over

    handoff, payload = hand_over(value, what=what)
    return {"handoff": handoff}, payload


def _run(
    fn: Callable[..., Any],
    call: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    keep: Callable[[Storage, Any, str], tuple[dict[str, Any], Any]],
) -> tuple[Any, dict[str, Any], Any]:
    adopt_environment(call.get("environment"))
    settings = call["settings"]
    storage = open_storage(
        settings["storage_url"], settings["storage_options"], service_url=settings["service_url"], api_key=settings.get("api_key")
    )
    context = AttemptContext(
        call["exec_id"],
        call["invocation_id"],
        call["attempt"],
        storage,
        settings["service_url"],
        is_replay=call.get("is_replay", False),
        settings=settings,
    )
    sink = LogSink(
        call["exec_id"], "step", invocation_id=call["invocation_id"], attempt=call["attempt"], level=settings["log_level"]
    )
    started_at = time.time()
    value: Any = None
    error: dict[str, Any] | None = None
    kept: dict[str, Any] = {"output": None}
    payload: Any = None
    token = current_attempt.set(context)
    try:
        with capture(sink):
            try:
                args, kwargs = resolve_refs(args), resolve_refs(kwargs)
                value = fn(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = asyncio.run(_await(value))
            except BaseException as exc:  # noqa: BLE001 - every failure is recorded, none reaches Ray
                error = describe_error(exc, FailureOrigin.USER_CODE)
        if error is None:
            try:
                kept, payload = keep(storage, value, f"the output of checkpoint {call['invocation_id']!r}")
            except SerializationError as exc:
                error = describe_error(exc, FailureOrigin.USER_CODE)
            except KitaruBackendError as exc:  # storage failed after its own retries: named, nothing committed
                error = describe_error(exc, FailureOrigin.BACKEND)
    finally:
        current_attempt.reset(token)
    outcome = {
        "status": "completed" if error is None else "failed",
        "started_at": started_at,
        "ended_at": time.time(),
        "output": None,
        **kept,
        "error": error,
        "metadata": context.metadata,
        "artifacts": context.artifacts,
        "events": context.events,
        "logs": sink.close(),
        **where_attempt_runs(),
    }
    if error is not None:
        return None, outcome, None
    return value, outcome, payload


_adopted: list[str] = []  # the environment this worker took over last (a worker serves one driver)
_OWN_VARIABLES = ("RAY_", "PYTHONPATH")  # how Ray started this worker: never the driver's


def adopt_environment(key: str | None) -> None:
    """Take over the driver's working directory and environment (a worker of a shared Ray), once per driver."""
    if key is None or (_adopted and _adopted[-1] == key):
        return
    import json
    import os

    from ray.experimental import internal_kv

    stored = internal_kv._internal_kv_get(key, namespace="kitaru")
    if stored is not None:
        found = json.loads(stored)
        os.environ.update({name: value for name, value in found["env"].items() if not name.startswith(_OWN_VARIABLES)})
        if os.path.isdir(found["cwd"]):
            os.chdir(found["cwd"])
    _adopted.append(key)


def where_attempt_runs() -> dict[str, Any]:
    """The Ray task, node and worker process running this attempt (no task id inline in the driver)."""
    import os

    import ray

    if not ray.is_initialized():
        return {"ray_task_id": None, "ray_node_id": None, "worker_pid": os.getpid()}
    context = ray.get_runtime_context()
    in_task = context.worker.mode == ray.WORKER_MODE
    return {
        "ray_task_id": context.get_task_id() if in_task else None,
        "ray_node_id": context.get_node_id(),
        "worker_pid": os.getpid(),
    }


async def _await(awaitable: Any) -> Any:
    return await awaitable


def describe_error(exc: BaseException, origin: FailureOrigin) -> dict[str, Any]:
    """A JSON-ready description of ``exc``, plus the pickled exception when it pickles."""
    import cloudpickle

    try:
        pickled: bytes | None = cloudpickle.dumps(exc)
    except Exception:  # noqa: BLE001 - an unpicklable exception is still described
        pickled = None
    cls = type(exc)
    return {
        "type": f"{cls.__module__}.{cls.__qualname__}" if cls.__module__ != "builtins" else cls.__qualname__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(cls, exc, exc.__traceback__)),
        "origin": origin.value,
        "pickled": pickled,
    }


def resolve_refs(value: Any) -> Any:
    """Ray resolves top-level ObjectRef arguments; futures nested in lists or dicts arrive as refs."""
    import ray

    return map_nested(value, lambda item: ray.get(item) if isinstance(item, ray.ObjectRef) else item)
