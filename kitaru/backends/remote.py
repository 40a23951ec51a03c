"""Drivers on a remote backend (ray, kuberay, vertex, sagemaker): waiting for them to start, reading their jobs back.

The launch path (:func:`kitaru.backends._launch.launch`) submits a spec and, for a remote backend,
calls :func:`wait_started`: it returns once the driver holds the execution, or raises the job's own
error when the job ends first (a runtime_env that failed to build, an entrypoint that crashed). A
driver the ``ray`` backend submitted records which job it runs in (``metadata.submission``), so later
clients can ask the backend about it: :func:`reconcile` turns a ``running`` execution whose job has
ended into ``interrupted``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from kitaru.backends import backend_options, get_backend
from kitaru.contracts.launch import Backend, Submission
from kitaru.errors import KitaruBackendError, KitaruError, KitaruNotFoundError, KitaruUsageError

__all__ = [
    "SUBMISSION_ENV",
    "auto_resumes",
    "reconcile",
    "recorded_submission",
    "remote_backend",
    "submission_environment",
    "submission_of",
    "wait_started",
]

# The backend tells the driver which submission it runs in; the driver records it on the execution.
SUBMISSION_ENV = "KITARU_SUBMISSION"
LOCAL_BACKENDS = ("default", "local", "process")
START_TIMEOUT_SECONDS = 300.0  # a cold cluster builds the runtime_env (uploads, pip) before the driver starts

Started = Callable[[dict[str, Any]], bool]


def remote_backend(service: Any, stack: str | None) -> Backend | None:
    """The backend of ``stack`` when it runs drivers elsewhere; ``None`` for the local stacks (and ``default``)."""
    if not stack or stack == "default":
        return None
    try:
        row = service.get_stack(stack)
    except KitaruNotFoundError:
        return None  # a deleted stack's executions continue here
    if row["backend"] in LOCAL_BACKENDS:
        return None
    return get_backend(row["backend"], row["backend_options"] or {}, container_registry=row.get("container_registry"))


def auto_resumes(service: Any, stack: str | None, seen: dict[str, bool]) -> bool:
    """Whether ``resume --all`` resumes interrupted executions of ``stack``: always for local stacks and backends
    without the option, on a backend declaring ``auto_resume`` (``ray``) only when the stack sets it
    (``seen`` caches the answer per stack)."""
    if not stack or stack == "default":
        return True
    if stack not in seen:
        try:
            row = service.get_stack(stack)
        except KitaruNotFoundError:
            seen[stack] = True  # its stack is gone: it resumes here, as on the default stack
        else:
            options = row["backend_options"] or {}
            seen[stack] = not _declares_auto_resume(row["backend"]) or bool(options.get("auto_resume"))
    return seen[stack]


def _declares_auto_resume(backend: str) -> bool:
    try:
        return any(option.name == "auto_resume" for option in backend_options(backend))
    except KitaruUsageError:  # a backend this installation does not have
        return False


def wait_started(backend: Backend, submission: Submission, service: Any, started: Started) -> Submission:
    """Return ``submission`` once ``started(record)`` holds for its execution.

    Raises:
        KitaruBackendError: the job ended before its driver took the execution (the message carries the
            job's own words), or did not take it within ``START_TIMEOUT_SECONDS``.
    """
    exec_id = submission.exec_id
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    delay = 0.1
    while True:
        record = _record(service, exec_id)
        if record is not None and started(record):
            return submission
        report = backend.status(submission)
        if report.state.is_finished:
            record = _record(service, exec_id)
            if record is not None and started(record):
                return submission  # it ran to the end before we looked
            reason = (report.message or "no reason given").strip().splitlines()[-1]
            raise KitaruBackendError(
                f"{backend.name} job {submission.submission_id} ended ({report.state.value}) before its driver started "
                f"execution {exec_id!r}: {reason}; see its log with `kitaru executions logs {exec_id} --driver`"
                f" or {submission.dashboard_url}."
            )
        if time.monotonic() > deadline:
            raise KitaruBackendError(
                f"{backend.name} job {submission.submission_id} has not started execution {exec_id!r} within "
                f"{START_TIMEOUT_SECONDS:.0f} s; see {submission.dashboard_url}."
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def submission_of(record: Mapping[str, Any]) -> Submission | None:
    """The job an execution's driver recorded running in, if it ran on a remote backend."""
    data = (record.get("metadata") or {}).get("submission")
    if not isinstance(data, dict) or not data.get("backend"):
        return None
    return Submission(
        backend=data["backend"],
        exec_id=record["exec_id"],
        submission_id=data.get("submission_id"),
        dashboard_url=data.get("dashboard_url"),
        details=data.get("details") or {},
    )


def reconcile(service: Any, record: dict[str, Any]) -> dict[str, Any]:
    """``record``, made ``interrupted`` when it says its driver runs but the driver's job has ended.

    Kitaru's records decide the status; the job's is a signal: a job that finished, was
    stopped or is gone (its cluster died) cannot hold the lease any more, so the lease is
    expired now instead of when it lapses.
    """
    if record.get("status") not in ("running", "waiting") or not record.get("driver_id"):
        return record
    submission = submission_of(record)
    if submission is None or submission.backend in LOCAL_BACKENDS:
        return record
    try:
        backend = remote_backend(service, record.get("stack"))
    except (KitaruNotFoundError, KitaruBackendError):
        return record
    if backend is None or backend.name != submission.backend:
        return record
    if not backend.status(submission).state.is_finished:
        return record
    try:
        # a lease ending now: the record reads `interrupted` at once instead of when the lease lapses
        service.renew_lease(record["exec_id"], record["driver_id"], 0.001)
    except KitaruError:
        return record  # a key that may not drive this execution: its lease lapses on its own
    time.sleep(0.002)
    return service.get_execution(record["exec_id"], with_calls=False)


def submission_environment(submission: Submission) -> dict[str, str]:
    """The variable telling a submitted driver which job it runs in."""
    data = {
        "backend": submission.backend,
        "submission_id": submission.submission_id,
        "dashboard_url": submission.dashboard_url,
        "details": dict(submission.details),
    }
    return {SUBMISSION_ENV: json.dumps(data)}


def recorded_submission() -> dict[str, Any]:
    """What a submitted driver records on its execution's metadata (empty outside a submitted job)."""
    raw = os.environ.get(SUBMISSION_ENV)
    if not raw:
        return {}
    data = json.loads(raw)
    return {"submission": data, "dashboard_url": data.get("dashboard_url")}


def _record(service: Any, exec_id: str) -> dict[str, Any] | None:
    try:
        return service.get_execution(exec_id, with_calls=False)
    except KitaruNotFoundError:
        return None
