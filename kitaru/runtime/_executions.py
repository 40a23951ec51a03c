"""Starting and resuming executions in this process."""

from __future__ import annotations

import importlib
import inspect
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kitaru.config import resolve_settings
from kitaru.errors import KitaruStateError, KitaruUsageError
from kitaru.runtime._driver import ExecutionDriver
from kitaru.storage import load_value, open_storage, store_value

if TYPE_CHECKING:
    from kitaru.flow import Flow, FlowHandle

_PREVIEW_CHARS = 200


def start_execution(
    flow: Flow,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    exec_id: str | None,
    cache: bool | None,
    stack: str | None,
) -> FlowHandle:
    """Record a new execution and run its flow body in a background thread."""
    from kitaru.flow import FlowHandle
    from kitaru.runtime._ray import ensure_ray
    from kitaru_server import service_for

    settings = resolve_settings()
    service = service_for(settings.database_url)
    if exec_id is not None:
        existing = _existing(service, exec_id)
        if existing is not None:
            if existing["status"] == "completed":
                return FlowHandle(exec_id, settings)
            raise KitaruStateError(_idempotency_message(exec_id, existing["status"]), exec_id=exec_id, status=existing["status"])
    _check_arguments(flow.func, args, kwargs)
    ensure_ray(settings)
    exec_id = exec_id or str(uuid.uuid4())
    storage = open_storage(settings.storage_url, settings.storage_options)
    worker_settings = settings.for_workers()
    inputs = store_value(storage, {"args": list(args), "kwargs": kwargs}, what=f"the inputs of flow {flow.name!r}")
    driver = ExecutionDriver(
        exec_id=exec_id,
        flow_name=flow.name,
        settings=settings,
        worker_settings=worker_settings,
        service=service,
        storage=storage,
        cache_overrides=(cache, flow.cache),
    )
    service.create_execution({
        "exec_id": exec_id,
        "flow": flow.name,
        "flow_ref": flow.import_path,
        "flow_blob": _flow_blob(flow, storage),
        "inputs": {"object": inputs.to_dict(), "preview": _preview_inputs(flow.func, args, kwargs)},
        "stack": stack or settings.stack,
        "settings": {**worker_settings, "cache": cache if cache is not None else flow.cache},
        "driver_id": driver.driver_id,
        "lease_expires_at": time.time() + settings.lease_seconds,
    })
    driver.start(flow.func, args, kwargs)
    return FlowHandle(exec_id, settings, driver=driver)


def resume_execution(exec_id: str, *, from_statuses: tuple[str, ...] = ("interrupted",)) -> FlowHandle:
    """Continue an execution from its last committed call, in this process."""
    from kitaru.flow import FlowHandle
    from kitaru.runtime._ray import ensure_ray
    from kitaru_server import service_for

    local = resolve_settings()
    service = service_for(local.database_url)
    record = service.get_execution(exec_id, with_calls=False)
    if record["status"] not in from_statuses:
        raise KitaruStateError(_resume_message(exec_id, record["status"]), exec_id=exec_id, status=record["status"])
    worker_settings = {key: value for key, value in record["settings"].items() if key != "cache"}
    storage = open_storage(worker_settings["storage_url"], worker_settings["storage_options"])
    func = load_flow_function(record, storage)
    inputs = load_value(storage, record["inputs"]["object"])
    ensure_ray(local)
    driver = ExecutionDriver(
        exec_id=exec_id,
        flow_name=record["flow"],
        settings=local,
        worker_settings=worker_settings,
        service=service,
        storage=storage,
        cache_overrides=(record["settings"].get("cache"), None),
        existing_calls=service.existing_calls(exec_id),
    )
    try:
        service.claim_execution(exec_id, driver.driver_id, local.lease_seconds, from_statuses=from_statuses)
    except KitaruStateError as exc:
        raise KitaruStateError(_resume_message(exec_id, exc.fields.get("status", "?")), exec_id=exec_id) from None
    driver.start(func, tuple(inputs["args"]), inputs["kwargs"])
    return FlowHandle(exec_id, local, driver=driver)


def load_flow_function(record: dict[str, Any], storage: Any) -> Callable[..., Any]:
    """The flow function of an execution: imported by path, else from its stored cloudpickle blob."""
    module_name, _, qualname = record["flow_ref"].partition(":")
    if module_name != "__main__":
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
            return getattr(target, "func", target)
        except (ImportError, AttributeError):
            if not record.get("flow_blob"):
                raise KitaruUsageError(
                    f"flow {record['flow_ref']!r} cannot be imported here; run this from the project that defines it."
                ) from None
    if not record.get("flow_blob"):
        raise KitaruUsageError(f"flow {record['flow_ref']!r} was defined in a script and has no stored copy; run it again.")
    return load_value(storage, record["flow_blob"])


def _flow_blob(flow: Flow, storage: Any) -> dict[str, Any] | None:
    """A cloudpickle copy of flows defined in ``__main__`` or a notebook, so any process can resume them."""
    if flow.func.__module__ != "__main__":
        return None
    import cloudpickle

    stored = storage.put(cloudpickle.dumps(flow.func))
    return {"uri": stored.uri, "sha256": stored.sha256, "size": stored.size, "serializer": "cloudpickle", "type_path": "builtins:function"}


def _existing(service: Any, exec_id: str) -> dict[str, Any] | None:
    from kitaru.errors import KitaruNotFoundError

    try:
        return service.get_execution(exec_id, with_calls=False)
    except KitaruNotFoundError:
        return None


def _check_arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as exc:
        raise KitaruUsageError(f"flow {func.__name__!r} was called with arguments it does not take: {exc}.") from None


def _preview_inputs(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    from kitaru.storage.serializers import _is_json_native

    bound = inspect.signature(func).bind(*args, **kwargs)
    preview = {}
    for name, value in bound.arguments.items():
        preview[name] = value if _is_json_native(value) and len(repr(value)) <= _PREVIEW_CHARS else repr(value)[:_PREVIEW_CHARS]
    return preview


def _idempotency_message(exec_id: str, status: str) -> str:
    if status == "failed":
        action = f"retry it with `kitaru executions retry {exec_id}`"
    elif status in ("interrupted", "waiting", "cancelled"):
        action = f"resume it with `kitaru executions resume {exec_id}`"
    else:
        action = "wait for it with KitaruClient().executions.get(...) or choose another exec_id"
    return f"execution {exec_id!r} already exists and is {status}; {action}."


def _resume_message(exec_id: str, status: str) -> str:
    if status == "running":
        return f"execution {exec_id!r} is still running (its driver holds the lease); wait for it, or resume once it is interrupted."
    if status == "completed":
        return f"execution {exec_id!r} is already completed; nothing to resume."
    if status == "failed":
        return f"execution {exec_id!r} failed; retry it with `kitaru executions retry {exec_id}` instead of resuming."
    return f"execution {exec_id!r} is {status} and cannot be resumed."

