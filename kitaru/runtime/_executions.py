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
RESUMABLE = ("interrupted", "waiting", "cancelled")


def start_execution(
    flow: Flow,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    exec_id: str | None,
    cache: bool | None,
    retries: int | None,
    stack: str | None,
    metadata: dict[str, Any] | None = None,
) -> FlowHandle:
    """Record a new execution and run its flow body in a background thread (``metadata``: recorded on it)."""
    from kitaru.flow import FlowHandle

    settings = resolve_settings()
    service = _service(settings)
    if exec_id is not None:
        existing = _existing(service, exec_id)
        if existing is not None:
            if existing["status"] == "completed":
                return FlowHandle(exec_id, settings)
            raise KitaruStateError(_idempotency_message(exec_id, existing["status"]), exec_id=exec_id, status=existing["status"])
    _check_arguments(flow.func, args, kwargs)
    from kitaru._stacks import apply_stack
    from kitaru.backends.remote import remote_backend

    settings = apply_stack(settings, service, stack or settings.stack)
    backend = remote_backend(service, stack or settings.stack)
    if backend is not None:
        from kitaru.runtime._remote import submit_run

        return submit_run(backend, service, settings, flow, args, kwargs, exec_id=exec_id, cache=cache, retries=retries)
    storage = open_storage(settings.storage_url, settings.storage_options)
    auto_retries = next(choice for choice in (retries, flow.retries, settings.retries) if choice is not None)
    return _launch(
        settings,
        service,
        storage,
        flow.func,
        args,
        kwargs,
        record={
            "exec_id": exec_id or str(uuid.uuid4()),
            "flow": flow.name,
            "flow_ref": flow.import_path,
            "flow_blob": _flow_blob(flow.func, storage),
            "stack": stack or settings.stack,
            "settings": {**settings.for_workers(), "cache": cache if cache is not None else flow.cache, "retries": auto_retries},
            "metadata": metadata or {},
        },
        cache_overrides=(cache, flow.cache),
        auto_retries=auto_retries,
    )


def start_replay(
    exec_id: str,
    *,
    at: str,
    flow_overrides: dict[str, Any] | None = None,
    checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
    invocation_overrides: dict[str, dict[str, Any]] | None = None,
    skip: list[str] | None = None,
    new_exec_id: str | None = None,
) -> FlowHandle:
    """Start a new execution replaying ``exec_id`` from ``at`` (every selector is checked before anything runs).

    ``new_exec_id`` names the replay (default: a new uuid), so a detached driver's caller knows it up front.
    """
    from kitaru.runtime._replay import ReplayPlan

    settings = resolve_settings()
    service = _service(settings)
    original = service.get_execution(exec_id)
    if original["status"] in ("running", "waiting") and original["driver_id"]:
        raise KitaruStateError(
            f"execution {exec_id!r} is still {original['status']}; replay it once it has ended (or cancel it).", exec_id=exec_id
        )
    from kitaru.backends.remote import remote_backend

    backend = remote_backend(service, original["stack"])
    if backend is not None:
        from kitaru.runtime._remote import submit_replay

        replay = {
            "at": at,
            "flow_overrides": flow_overrides,
            "checkpoint_overrides": checkpoint_overrides,
            "invocation_overrides": invocation_overrides,
            "skip": skip,
        }
        options = {key: value for key, value in replay.items() if value is not None}
        return submit_replay(backend, service, settings, original, options, new_exec_id=new_exec_id or str(uuid.uuid4()))
    plan = ReplayPlan(
        original,
        service.list_waits(exec_id),
        at=at,
        checkpoint_overrides=checkpoint_overrides,
        invocation_overrides=invocation_overrides,
        skip=skip,
    )
    worker_settings = _worker_settings(original, settings)
    storage = open_storage(worker_settings["storage_url"], worker_settings["storage_options"])
    func = load_flow_function(original, storage)
    inputs = load_value(storage, original["inputs"]["object"])
    args, kwargs = tuple(inputs["args"]), dict(inputs["kwargs"])
    if flow_overrides:
        bound = inspect.signature(func).bind(*args, **kwargs)
        unknown = set(flow_overrides) - set(inspect.signature(func).parameters)
        if unknown:
            raise KitaruUsageError(
                f"flow_overrides names {sorted(unknown)}, which flow {original['flow']!r} does not take; "
                f"its parameters are {list(inspect.signature(func).parameters)}."
            )
        bound.arguments.update(flow_overrides)
        args, kwargs = bound.args, bound.kwargs
    return _launch(
        settings,
        service,
        storage,
        func,
        args,
        kwargs,
        record={
            "exec_id": new_exec_id or str(uuid.uuid4()),
            "flow": original["flow"],
            "flow_ref": original["flow_ref"],
            "flow_blob": original["flow_blob"],
            "stack": original["stack"],
            "settings": original["settings"],
            "original_exec_id": exec_id,
        },
        cache_overrides=(False, None),
        plan=plan,
    )


def resume_execution(exec_id: str, *, from_statuses: tuple[str, ...] = RESUMABLE) -> FlowHandle:
    """Continue an execution from its last committed call, in this process (resume, or retry with ``("failed",)``)."""
    from kitaru.backends.remote import reconcile, remote_backend
    from kitaru.flow import FlowHandle
    from kitaru.runtime._ray import ensure_ray

    local = resolve_settings()
    service = _service(local)
    record = reconcile(service, service.get_execution(exec_id, with_calls=False))
    if record["status"] not in from_statuses or _driven(record):
        raise KitaruStateError(_continue_message(exec_id, record, from_statuses), exec_id=exec_id, status=record["status"])
    backend = remote_backend(service, record["stack"])
    if backend is not None:
        from kitaru.runtime._remote import submit_continue

        return submit_continue(backend, service, local, record, retry=from_statuses == ("failed",))
    worker_settings = _worker_settings(record, local)
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
        auto_retries=record["settings"].get("retries") or 0,
    )
    try:
        service.claim_execution(exec_id, driver.driver_id, local.lease_seconds, from_statuses=from_statuses)
    except KitaruStateError:
        raise KitaruStateError(
            _continue_message(exec_id, service.get_execution(exec_id, with_calls=False), from_statuses), exec_id=exec_id
        ) from None
    links = _dashboard_metadata()
    if links:  # this driver's Ray job, not the previous one's
        service.update_execution_metadata(exec_id, links)
    driver.start(func, tuple(inputs["args"]), inputs["kwargs"])
    return FlowHandle(exec_id, local, driver=driver)


def _launch(
    settings: Any,
    service: Any,
    storage: Any,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    record: dict[str, Any],
    cache_overrides: tuple[bool | None, ...],
    plan: Any = None,
    auto_retries: int = 0,
) -> FlowHandle:
    """Create the execution record and start its driver in this process."""
    from kitaru.flow import FlowHandle
    from kitaru.runtime._ray import ensure_ray

    ensure_ray(settings)
    worker_settings = _worker_settings(record, settings)
    inputs = store_value(storage, {"args": list(args), "kwargs": kwargs}, what=f"the inputs of flow {record['flow']!r}")
    driver = ExecutionDriver(
        exec_id=record["exec_id"],
        flow_name=record["flow"],
        settings=settings,
        worker_settings=worker_settings,
        service=service,
        storage=storage,
        cache_overrides=cache_overrides,
        plan=plan,
        auto_retries=auto_retries,
    )
    service.create_execution(
        {
            **record,
            "metadata": {**(record.get("metadata") or {}), **_dashboard_metadata()},
            "settings": {key: value for key, value in record["settings"].items() if key != "api_key"},  # a key is never stored
            "inputs": {"object": inputs.to_dict(), "preview": _preview_inputs(func, args, kwargs)},
            "driver_id": driver.driver_id,
            "lease_expires_at": time.time() + settings.lease_seconds,
        }
    )
    driver.start(func, args, kwargs)
    return FlowHandle(record["exec_id"], settings, driver=driver)


def _dashboard_metadata() -> dict[str, Any]:
    """The Ray dashboard page of this driver's job (``dashboard_url``), for every client to link to; empty without a dashboard."""
    from kitaru.runtime._ray import dashboard_url, session_key

    url, job_id = dashboard_url(), session_key()
    from kitaru.backends.remote import recorded_submission

    submitted = recorded_submission()  # a job submitted by a remote backend: link its own page
    if submitted:
        return {**submitted, "ray_job_id": job_id}
    if not url:
        return {}
    return {"dashboard_url": f"{url.rstrip('/')}/#/jobs/{job_id}" if job_id else url, "ray_job_id": job_id}


def _service(settings: Any) -> Any:
    from kitaru._service import connect_service

    return connect_service(settings.service_url, settings.api_key)


def _worker_settings(record: dict[str, Any], settings: Any) -> dict[str, Any]:
    """What this execution's tasks need: its stored settings, reached through this process's service URL and API key."""
    stored = {key: value for key, value in record["settings"].items() if key not in ("cache", "retries", "api_key")}
    return {**stored, "service_url": settings.service_url, "api_key": settings.api_key}


def _driven(record: dict[str, Any]) -> bool:
    """Whether a live driver holds the execution (its lease is current)."""
    return bool(record.get("driver_id")) and record["status"] in ("running", "waiting")


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


def _flow_blob(func: Callable[..., Any], storage: Any) -> dict[str, Any] | None:
    """A cloudpickle copy of flows defined in ``__main__``, a notebook or a script loaded by path
    (``kitaru run path.py:flow`` registers its module to be pickled by value), so any process can resume them."""
    import cloudpickle

    if func.__module__ != "__main__" and func.__module__ not in cloudpickle.list_registry_pickle_by_value():
        return None

    stored = storage.put(cloudpickle.dumps(func))
    return {
        "uri": stored.uri,
        "sha256": stored.sha256,
        "size": stored.size,
        "serializer": "cloudpickle",
        "type_path": "builtins:function",
    }


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


def _continue_message(exec_id: str, record: dict[str, Any], allowed: tuple[str, ...]) -> str:
    status = record["status"]
    if status == "completed":
        return f"execution {exec_id!r} is already completed; there is nothing to resume or retry."
    if status in ("running", "waiting") and record.get("driver_id"):
        return (
            f"execution {exec_id!r} is still {status} (its driver holds the lease); wait for it, give input to its wait, "
            "or resume once it is interrupted."
        )
    if status == "failed":
        return f"execution {exec_id!r} failed; retry it with KitaruClient().executions.retry({exec_id!r}) instead of resuming."
    if allowed == ("failed",):
        return f"execution {exec_id!r} is {status}, not failed; only failed executions are retried (resume {status} ones)."
    return f"execution {exec_id!r} is {status} and cannot be resumed."
