"""Runs, replays, resumes and retries on a stack whose backend runs the driver elsewhere (a Ray cluster).

The caller builds an :class:`~kitaru.contracts.launch.ExecutionSpec` carrying its own
server URL and key (or its ``KITARU_HOME``, embedded), hands it to the stack's backend and
returns a handle once the submitted driver holds the execution. Nothing runs here, so
Ray is never started in the caller.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import uuid
from typing import TYPE_CHECKING, Any

from kitaru.backends.remote import launch
from kitaru.contracts.launch import Backend, ExecutionSpec, LaunchAction
from kitaru.errors import KitaruUsageError
from kitaru.runtime._detached import DRIVER_PREFIX_ENV

if TYPE_CHECKING:
    from kitaru.config import Settings
    from kitaru.flow import Flow, FlowHandle

__all__ = ["remote_target", "spec_for", "submit_continue", "submit_replay", "submit_run"]


def submit_run(
    backend: Backend,
    service: Any,
    settings: Settings,
    flow: Flow,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    exec_id: str | None,
    cache: bool | None,
    retries: int | None,
) -> FlowHandle:
    """Submit a new execution of ``flow``; returns once its driver has recorded it."""
    inputs = json_inputs(flow, args, kwargs)
    extra = {}
    if cache is not None:
        extra["KITARU_CACHE"] = "1" if cache else "0"
    if retries is not None:
        extra["KITARU_RETRIES"] = str(retries)
    spec = spec_for(
        LaunchAction.RUN, exec_id or str(uuid.uuid4()), settings, target=remote_target(flow), inputs=inputs, extra=extra
    )
    launch(backend, spec, service, started=lambda record: True)
    return _handle(spec.exec_id, settings)


def submit_continue(backend: Backend, service: Any, settings: Settings, record: dict[str, Any], *, retry: bool) -> FlowHandle:
    """Submit a resume (or retry) of ``record``; returns once the submitted driver holds it.

    Its driver ids carry a prefix of ours, so it is told apart from a rival that claimed the execution first.
    """
    action = LaunchAction.RETRY if retry else LaunchAction.RESUME
    prefix = f"{uuid.uuid4().hex[:12]}-"
    spec = spec_for(action, record["exec_id"], settings, stack=record["stack"], extra={DRIVER_PREFIX_ENV: prefix})
    launch(backend, spec, service, started=lambda now: str(now.get("driver_id") or "").startswith(prefix))
    return _handle(spec.exec_id, settings)


def submit_replay(
    backend: Backend, service: Any, settings: Settings, original: dict[str, Any], options: dict[str, Any], *, new_exec_id: str
) -> FlowHandle:
    """Submit a replay of ``original`` as execution ``new_exec_id``; returns once its driver has recorded it."""
    spec = spec_for(
        LaunchAction.REPLAY, new_exec_id, settings, stack=original["stack"], source_exec_id=original["exec_id"], replay=options
    )
    launch(backend, spec, service, started=lambda record: True)
    return _handle(new_exec_id, settings)


def spec_for(
    action: LaunchAction,
    exec_id: str,
    settings: Settings,
    *,
    stack: str | None = None,
    extra: dict[str, str] | None = None,
    **fields: Any,
) -> ExecutionSpec:
    """A spec carrying this process's server URL and key (or its home, embedded), lease and cache setting to the driver."""
    environment = {
        "KITARU_LEASE_SECONDS": str(settings.lease_seconds),
        "KITARU_CACHE": "1" if settings.cache else "0",
        **(extra or {}),
    }
    return ExecutionSpec(
        action,
        exec_id,
        stack=stack or settings.stack or "default",
        server_url=settings.server_url,
        api_key=settings.api_key,
        home=None if settings.server_url else settings.home,
        storage_url=settings.storage_url,
        environment=environment,
        **fields,
    )


def remote_target(flow: Flow) -> str:
    """How the submitted driver finds ``flow``: its import path, or the script's path relative to this directory.

    Raises:
        KitaruUsageError: the flow was defined in a notebook or an interactive session (no file to send).
    """
    import cloudpickle

    module_name, _, qualname = flow.import_path.partition(":")
    if module_name != "__main__" and module_name not in cloudpickle.list_registry_pickle_by_value():
        return flow.import_path
    path = getattr(sys.modules.get(flow.func.__module__), "__file__", None)
    if not path or not path.endswith(".py"):
        raise KitaruUsageError(
            f"flow {flow.name!r} is defined in a notebook or an interactive session; move it into a module "
            "to run it on a remote stack."
        )
    return f"{os.path.relpath(path)}:{qualname}"


def json_inputs(flow: Flow, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The flow's arguments by name, as JSON values (a remote driver receives them as JSON).

    Raises:
        KitaruUsageError: they do not bind to the flow's signature, or one is not a JSON value.
    """
    try:
        bound = inspect.signature(flow.func).bind(*args, **kwargs)
    except TypeError as exc:
        raise KitaruUsageError(f"flow {flow.name!r} was called with arguments it does not take: {exc}.") from None
    inputs = dict(bound.arguments)
    for name, param in inspect.signature(flow.func).parameters.items():
        if param.kind is param.VAR_POSITIONAL and inputs.get(name):
            raise KitaruUsageError(f"flow {flow.name!r} takes *{name}, which a remote run cannot pass; use keyword arguments.")
        if param.kind is param.VAR_KEYWORD and name in inputs:
            inputs.update(inputs.pop(name))
        elif param.kind is param.VAR_POSITIONAL:
            inputs.pop(name, None)
    try:
        json.dumps(inputs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise KitaruUsageError(
            f"the inputs of flow {flow.name!r} must be JSON values to run on a remote stack ({exc}); "
            "pass data by reference (a path, a URL, a saved artifact's name)."
        ) from None
    return inputs


def _handle(exec_id: str, settings: Settings) -> FlowHandle:
    from kitaru.flow import FlowHandle

    return FlowHandle(exec_id, settings)
