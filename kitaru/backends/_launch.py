"""The one launch path: check the lifecycle rule of a spec's action, pick its stack's backend, submit.

The local backends return once their driver holds the execution; for a remote backend (a Ray
cluster, a container job) the launch path waits for that itself (:func:`kitaru.backends.remote.wait_started`).
"""

from __future__ import annotations

import dataclasses
import uuid

from kitaru.backends import backend_for_stack
from kitaru.backends.remote import LOCAL_BACKENDS, reconcile, wait_started
from kitaru.contracts import lifecycle
from kitaru.contracts.launch import DRIVER_PREFIX_ENV, ExecutionSpec, LaunchAction, Submission
from kitaru.contracts.service import RuntimeService
from kitaru.errors import KitaruNotFoundError, KitaruStateError

__all__ = ["launch"]

_DEFAULT_STACK = "default"


def launch(spec: ExecutionSpec, service: RuntimeService, *, detach: bool) -> Submission | None:
    """Submit ``spec`` to its stack's backend; ``None`` for a run whose ``exec_id`` completed already (idempotent).

    Raises:
        KitaruStateError: the action does not apply to the execution's state (the message says what does).
        KitaruUsageError: the stack names a backend that is not available, or the backend cannot run the spec.
    """
    if spec.action is LaunchAction.RUN and not spec.new_id:
        existing = _existing(service, spec.exec_id)
        if existing is not None:
            if existing["status"] == "completed":
                return None
            message = lifecycle.idempotency_message(spec.exec_id, existing["status"])
            raise KitaruStateError(message, exec_id=spec.exec_id, status=existing["status"])
    elif spec.action in (LaunchAction.RESUME, LaunchAction.RETRY):
        # a driver whose remote job ended (its cluster died) reads `interrupted` before the check
        record = reconcile(service, dict(service.get_execution(spec.exec_id, with_calls=False)))
        lifecycle.check_continue(record, lifecycle.continue_statuses(spec.action.value))
    elif spec.action is LaunchAction.REPLAY and spec.source_exec_id:  # its selectors are checked by the replay plan
        lifecycle.check_replay(service.get_execution(spec.source_exec_id, with_calls=False))
    if spec.stack in (None, _DEFAULT_STACK):
        backend = backend_for_stack(None, detach=detach)
    else:
        stack = service.get_stack(spec.stack)
        backend = backend_for_stack(
            stack["backend"], stack.get("backend_options"), detach=detach, container_registry=stack.get("container_registry")
        )
    if backend.name in LOCAL_BACKENDS:
        return backend.submit(spec)
    if spec.action in (LaunchAction.RESUME, LaunchAction.RETRY):
        prefix = f"{uuid.uuid4().hex[:12]}-"  # our driver's ids carry it: a rival that claimed first is told apart
        spec = dataclasses.replace(spec, environment={**spec.environment, DRIVER_PREFIX_ENV: prefix})
        return wait_started(
            backend, backend.submit(spec), service, lambda record: str(record.get("driver_id") or "").startswith(prefix)
        )
    return wait_started(backend, backend.submit(spec), service, lambda _record: True)


def _existing(service: RuntimeService, exec_id: str) -> dict | None:
    try:
        return dict(service.get_execution(exec_id, with_calls=False))
    except KitaruNotFoundError:
        return None
