"""One checkpoint attempt, as it runs inside a Ray worker (or inline in the driver).

The attempt never raises to Ray: it returns ``(value, outcome)`` where the
outcome records success or the error, the stored output's metadata, the
attempt's logs, metadata and saved artifacts. Writing the output here means
concurrent calls persist in parallel and large values never travel to the
driver.
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
from kitaru.storage import SerializationError, open_storage, store_value


def run_attempt(
    fn: Callable[..., Any], call: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """Run ``fn`` once for the call described by ``call``; returns ``(value, outcome)``."""
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
    output: dict[str, Any] | None = None
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
                output = store_value(storage, value, what=f"the output of checkpoint {call['invocation_id']!r}").to_dict()
            except SerializationError as exc:
                error = describe_error(exc, FailureOrigin.USER_CODE)
                value = None
            except KitaruBackendError as exc:  # storage failed after its own retries: named, nothing committed
                error = describe_error(exc, FailureOrigin.BACKEND)
                value = None
    finally:
        current_attempt.reset(token)
    outcome = {
        "status": "completed" if error is None else "failed",
        "started_at": started_at,
        "ended_at": time.time(),
        "node_id": _node_id(),
        "output": output,
        "error": error,
        "metadata": context.metadata,
        "artifacts": context.artifacts,
        "events": context.events,
        "logs": sink.close(),
    }
    return (value if error is None else None), outcome


def _node_id() -> str | None:
    """The Ray node this attempt ran on (``None`` outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


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
