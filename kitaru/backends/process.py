"""The ``process`` backend: a detached ``python -m kitaru.runtime ...`` driver on this machine.

The CLI, MCP, the UI (through the launcher ``kitaru server start`` hands the
server) and ``detach=True`` use it. The process runs in its own session
(``start_new_session=True``), so the execution outlives whatever started it; its
output goes to a log file under ``KITARU_HOME/logs/``. :meth:`ProcessBackend.submit`
returns once the driver has taken the execution over, or has exited first: then
the driver's own ``error:`` line becomes the caller's error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from kitaru.backends._settings import refuse_image, settings_for
from kitaru.contracts.launch import (
    DRIVER_PREFIX_ENV,
    BackendReport,
    BackendState,
    ExecutionSpec,
    LaunchAction,
    Submission,
    driver_arguments,
    driver_environment,
)
from kitaru.errors import KitaruError, KitaruNotFoundError, KitaruRuntimeError, KitaruStateError, KitaruUsageError

__all__ = ["Detached", "ProcessBackend", "spawn", "wait_started"]

START_TIMEOUT_SECONDS = 120.0  # a driver imports Kitaru and joins (or starts) Ray first: seconds on a small machine
STOP_GRACE_SECONDS = 5.0
_CONNECTION_ENV = ("KITARU_SERVER_URL", "KITARU_API_KEY")

Started = Callable[[dict[str, Any]], bool]


class ProcessBackend:
    """Detached driver processes (``submission_id`` is the pid; ``details`` has ``pid`` and ``log``)."""

    name: ClassVar[str] = "process"

    def submit(self, spec: ExecutionSpec) -> Submission:
        """Start ``python -m kitaru.runtime ...`` for ``spec``; returns once its driver holds the execution."""
        from kitaru._service import connect_service

        refuse_image(self.name, spec)
        arguments = driver_arguments(spec)
        settings = settings_for(spec)
        service = connect_service(settings.service_url, settings.api_key)
        env = {name: value for name, value in os.environ.items() if name not in _CONNECTION_ENV}
        env.update(driver_environment(spec))
        if spec.action in (LaunchAction.RESUME, LaunchAction.RETRY):
            before = service.get_execution(spec.exec_id, with_calls=False)
            prefix = f"{uuid.uuid4().hex[:12]}-"  # our driver's ids carry it: a rival that claimed first is told apart
            driver = spawn(arguments, label=spec.exec_id, env={**env, DRIVER_PREFIX_ENV: prefix}, home=settings.home)
            try:
                wait_started(driver, service, [spec.exec_id], lambda r: str(r.get("driver_id") or "").startswith(prefix))
            except KitaruError:
                _raise_if_taken(service, before, prefix)
                raise
        else:
            driver = spawn(arguments, label=spec.exec_id, env=env, home=settings.home)
            wait_started(driver, service, [spec.exec_id], lambda _record: True)
        pid = driver.process.pid
        return Submission(self.name, spec.exec_id, submission_id=str(pid), details={"pid": pid, "log": str(driver.log)})

    def status(self, submission: Submission) -> BackendReport:
        """``running`` while the process lives; after that, what its last line says."""
        pid = int(submission.submission_id or 0)
        if _alive(pid):
            return BackendReport(BackendState.RUNNING)
        last = _last_line(Path(submission.details.get("log", "")))
        if last.endswith((" is completed", " is waiting")):
            return BackendReport(BackendState.SUCCEEDED)
        return BackendReport(BackendState.FAILED, last or None)

    def cancel(self, submission: Submission) -> None:
        """Kill the driver's process group; idempotent. The execution reads ``interrupted`` once its lease
        lapses (cancel the execution itself through the client to end it ``cancelled``).

        SIGKILL rather than SIGTERM: Ray's SIGTERM handler fails the driver's running calls, which
        would record a failure the user never caused.
        """
        pid = int(submission.submission_id or 0)
        if not _alive(pid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def logs(self, submission: Submission, *, follow: bool = False) -> Iterator[str]:
        """The driver's own output (its log file), line by line; ``follow``: until the process ends."""
        path = Path(submission.details.get("log", ""))
        pid = int(submission.submission_id or 0)
        with path.open(errors="replace") as log:
            while True:
                line = log.readline()
                if line:
                    yield line.rstrip("\n")
                elif follow and _alive(pid):
                    time.sleep(0.1)
                else:
                    return

    def dashboard_url(self, submission: Submission) -> str | None:
        """``None``: the driver's Ray job page is recorded on the execution by the driver itself, where a dashboard runs."""
        return None


@dataclasses.dataclass
class Detached:
    """A started driver process and its log file."""

    process: subprocess.Popen[bytes]
    log: Path


def spawn(arguments: Sequence[str], *, label: str, env: Mapping[str, str], home: str) -> Detached:
    """Start ``python -m kitaru.runtime ARGUMENTS`` detached, logging to ``HOME/logs/<time>-<action>-<label>.log``."""
    logs = Path(home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{arguments[0]}-{label[:40]}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kitaru.runtime", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=os.getcwd(),
            env=_with_callers_path(env),
            start_new_session=True,
        )
    return Detached(process, log)


def _with_callers_path(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus this process's own import path (a script's directory, a test's), so the driver imports its flows."""
    own = [p for p in sys.path if p and os.path.isdir(p) and not p.startswith((sys.prefix, sys.base_prefix))]
    given = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys([*given, *own])), "PYTHONUNBUFFERED": "1"}


def wait_started(
    driver: Detached, service: Any, exec_ids: Sequence[str], started: Started, *, timeout: float = START_TIMEOUT_SECONDS
) -> None:
    """Return once ``started(record)`` holds for every execution, or raise the driver's own error if it exits first.

    Raises:
        KitaruUsageError: the driver refused the request (its exit status 2: a bad selector, an unknown target...).
        KitaruRuntimeError: it failed, or did not start within ``timeout`` (the message names its log).
    """
    pending = list(exec_ids)
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        pending = [exec_id for exec_id in pending if not _has_started(service, exec_id, started)]
        if not pending:
            return
        code = driver.process.poll()
        if code is not None:
            # 0: it drove every execution to its end (or to a wait) already, too fast to be seen running
            if code != 0 and [exec_id for exec_id in pending if not _has_started(service, exec_id, started)]:
                raise _driver_error(driver, code)
            return
        if time.monotonic() > deadline:
            raise KitaruRuntimeError(
                f"the driver process (pid {driver.process.pid}) has not started within {timeout:.0f} s; see its log {driver.log}."
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _raise_if_taken(service: Any, before: Mapping[str, Any], prefix: str) -> None:
    """Raise :class:`KitaruStateError` when a rival driver (not ours, not the one ``before``) holds the execution."""
    exec_id = before["exec_id"]
    now = service.get_execution(exec_id, with_calls=False)
    rival = str(now.get("driver_id") or "")
    if rival and not rival.startswith(prefix) and rival != before.get("driver_id"):
        raise KitaruStateError(
            f"another driver took execution {exec_id} first (it is {now['status']} now); nothing was started "
            "here: follow it with `kitaru executions get` or `logs`.",
            exec_id=exec_id,
            status=now["status"],
        ) from None


def _has_started(service: Any, exec_id: str, started: Started) -> bool:
    try:
        return started(service.get_execution(exec_id, with_calls=False))
    except KitaruNotFoundError:
        return False


def _driver_error(driver: Detached, code: int) -> KitaruError:
    """The error the driver printed (its last ``error:`` line), with the exit status telling usage from failure."""
    try:
        lines = driver.log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    message = next((line.removeprefix("error:").strip() for line in reversed(lines) if line.startswith("error:")), None)
    if message is None:
        message = f"the driver process exited with status {code} before it started; see its log {driver.log}"
    return (KitaruUsageError if code == 2 else KitaruRuntimeError)(message)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):  # our own child that exited: reap it, it is not running
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
