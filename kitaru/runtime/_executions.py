"""Starting, resuming and replaying executions in this process: each returns the running driver.

The ``settings`` passed in say where the execution is recorded (the caller's
server URL and key, or the embedded database); backends call these.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kitaru._values import resolve_path
from kitaru.config import Settings
from kitaru.contracts.lifecycle import RESUMABLE, check_continue, check_replay, continue_message, idempotency_message
from kitaru.errors import KitaruConflictError, KitaruStateError, KitaruUsageError
from kitaru.runtime._driver import ExecutionDriver
from kitaru.storage import load_value, open_storage, store_value

if TYPE_CHECKING:
    from kitaru.contracts.service import RuntimeService

__all__ = ["load_flow_function", "resume_execution", "start_execution", "start_replay"]

_PREVIEW_CHARS = 200
OWN_JOB = False
"""Whether this process's Ray job belongs to the execution it drives (set by ``python -m kitaru.runtime``);
a driver thread in a caller's process shares that process's job, which is no page of the execution's own."""


def start_execution(
    flow: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    settings: Settings,
    exec_id: str | None,
    cache: bool | None,
    retries: int | None,
    stack: str | None,
    image: Any = None,
    metadata: dict[str, Any] | None = None,
) -> ExecutionDriver | None:
    """Record a new execution of ``flow`` (a :class:`kitaru.Flow`) and run its body in a background thread
    (``metadata``: recorded on it, e.g. the deployment version it runs).

    Returns ``None`` when ``exec_id`` names an execution that completed already (an idempotent run).
    """
    service = _service(settings)
    _check_arguments(flow.func, args, kwargs)
    from kitaru._stacks import apply_stack

    settings = apply_stack(settings, service, stack or settings.stack)
    storage = open_storage(
        settings.storage_url, settings.storage_options, service_url=settings.service_url, api_key=settings.api_key
    )
    auto_retries = next(choice for choice in (retries, flow.retries, settings.retries) if choice is not None)
    try:
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
                "settings": {
                    **settings.for_workers(),
                    "cache": cache if cache is not None else flow.cache,
                    "retries": auto_retries,
                    "image": _image(image, flow.image, settings.image),
                },
                "metadata": metadata or {},
            },
            cache_overrides=(cache, flow.cache),
            auto_retries=auto_retries,
        )
    except KitaruConflictError:
        if exec_id is None:
            raise
        # the caller's own id, taken meanwhile: a completed run is done (idempotent), any other is an error
        existing = service.get_execution(exec_id, with_calls=False)
        if existing["status"] == "completed":
            return None
        raise KitaruStateError(
            idempotency_message(exec_id, existing["status"]), exec_id=exec_id, status=existing["status"]
        ) from None


def start_replay(
    exec_id: str,
    *,
    at: str,
    flow_overrides: dict[str, Any] | None = None,
    checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
    invocation_overrides: dict[str, dict[str, Any]] | None = None,
    skip: list[str] | None = None,
    new_exec_id: str | None = None,
    settings: Settings,
) -> ExecutionDriver:
    """Start a new execution replaying ``exec_id`` from ``at`` (every selector is checked before anything runs).

    ``new_exec_id`` names the replay (default: a new uuid), so a detached driver's caller knows it up front.
    """
    from kitaru.runtime._replay import ReplayPlan

    service = _service(settings)
    original = service.get_execution(exec_id)
    check_replay(original)
    plan = ReplayPlan(
        original,
        service.list_waits(exec_id),
        at=at,
        checkpoint_overrides=checkpoint_overrides,
        invocation_overrides=invocation_overrides,
        skip=skip,
    )
    worker_settings = _worker_settings(original, settings)
    storage = open_storage(
        worker_settings["storage_url"],
        worker_settings["storage_options"],
        service_url=worker_settings["service_url"],
        api_key=worker_settings.get("api_key"),
    )
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


def resume_execution(exec_id: str, *, settings: Settings, from_statuses: tuple[str, ...] = RESUMABLE) -> ExecutionDriver:
    """Continue an execution from its last committed call, in this process (resume, or retry with ``("failed",)``)."""
    from kitaru.runtime._ray import ensure_ray

    local = settings
    service = _service(local)
    record = service.get_execution(exec_id, with_calls=False)
    check_continue(record, from_statuses)
    worker_settings = _worker_settings(record, local)
    storage = open_storage(
        worker_settings["storage_url"],
        worker_settings["storage_options"],
        service_url=worker_settings["service_url"],
        api_key=worker_settings.get("api_key"),
    )
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
            continue_message(exec_id, service.get_execution(exec_id, with_calls=False), from_statuses), exec_id=exec_id
        ) from None
    links = _dashboard_metadata()
    if links or (record.get("metadata") or {}).get("dashboard_url"):  # this driver's Ray job, never the previous one's
        service.update_execution_metadata(exec_id, links or {"dashboard_url": None, "ray_job_id": None})
    driver.start(func, tuple(inputs["args"]), inputs["kwargs"])
    return driver


def _launch(
    settings: Settings,
    service: RuntimeService,
    storage: Any,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    record: dict[str, Any],
    cache_overrides: tuple[bool | None, ...],
    plan: Any = None,
    auto_retries: int = 0,
) -> ExecutionDriver:
    """Create the execution record and start its driver in this process."""
    from kitaru.runtime._ray import ensure_ray

    ensure_ray(settings, first_worker=plan is None)
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
    return driver


def _image(*choices: Any) -> dict[str, Any] | None:
    """The image recorded on the execution: ``.run(image=)`` over ``@flow(image=)`` over ``configure(image=)``."""
    from kitaru.images import image_spec

    return next((image_spec(choice) for choice in choices if choice is not None), None)


def _dashboard_metadata() -> dict[str, Any]:
    """This driver's Ray job id and its job page (``dashboard_url``) where it has one of its own, for every client to link to.

    A job submitted by a remote backend links its own page; a local driver links one only when it owns
    its job (a job shared with the caller's process is no page of this execution's own).
    """
    from kitaru.backends.remote import recorded_submission
    from kitaru.runtime._ray import dashboard_url, session_key

    job_id = session_key()
    submitted = recorded_submission()
    if submitted:
        return {**submitted, "ray_job_id": job_id}
    url = dashboard_url()
    links = {"ray_job_id": job_id} if job_id else {}
    if url and job_id and OWN_JOB:
        links["dashboard_url"] = f"{url.rstrip('/')}/#/jobs/{job_id}"
    return links


def _service(settings: Settings) -> RuntimeService:
    from kitaru._service import connect_service

    return connect_service(settings.service_url, settings.api_key)


def _worker_settings(record: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """What this execution's tasks need: its stored settings, reached through this process's service URL and API key."""
    stored = {key: value for key, value in record["settings"].items() if key not in ("cache", "retries", "api_key")}
    return {**stored, "service_url": settings.service_url, "api_key": settings.api_key}


def load_flow_function(record: dict[str, Any], storage: Any) -> Callable[..., Any]:
    """The flow function of an execution: imported by path, else from its stored cloudpickle blob."""
    if not record["flow_ref"].startswith("__main__:"):
        try:
            target = resolve_path(record["flow_ref"])
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
        "digest": stored.digest,
        "digest_algorithm": stored.algorithm,
        "size": stored.size,
        "serializer": "cloudpickle",
        "type_path": "builtins:function",
    }


def _check_arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as exc:
        raise KitaruUsageError(f"flow {func.__name__!r} was called with arguments it does not take: {exc}.") from None


def _preview_inputs(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    from kitaru.storage.serializers import is_json_native

    bound = inspect.signature(func).bind(*args, **kwargs)
    preview = {}
    for name, value in bound.arguments.items():
        preview[name] = value if is_json_native(value) and len(repr(value)) <= _PREVIEW_CHARS else repr(value)[:_PREVIEW_CHARS]
    return preview
