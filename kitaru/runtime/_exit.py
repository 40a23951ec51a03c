"""Process exit waits for the executions this process drives, as Python waits for non-daemon threads.

A script may end right after ``.run()``. Its drivers are daemon threads (Ctrl-C must
stay able to end the process), so the interpreter would freeze them mid-call, and its
executor shutdown makes their next call fail with "cannot schedule new futures after
interpreter shutdown". Instead, a hook registered with ``threading._register_atexit``
(it runs before non-daemon threads are joined and, being registered later, before
``concurrent.futures`` shuts its executors down) says in one line per execution that
the process waits, and joins the drivers. An execution then ends or suspends on its
next wait (input later resumes it in a detached driver). Ctrl-C while waiting, or a
script that ended with Ctrl-C, abandons them instead: each lease is released at once,
so the execution reads ``interrupted`` and ``resume`` continues it; nothing is recorded
as failed because the process exits.

Then :func:`leave_ray` (an ``atexit`` hook, run before Ray's own) disconnects from Ray
without the half second Ray always waits for its workers' output to reach this terminal,
when no checkpoint of an execution that just ended printed anything.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitaru.runtime._driver import ExecutionDriver

__all__ = ["abandon_all", "leave_ray", "track", "untrack"]

_lock = threading.Lock()
_drivers: dict[str, ExecutionDriver] = {}
_hooked = False
# Ray's log monitor polls worker log files every 0.1 s and looks for new files less often;
# Ray's exit hook waits this long for the last lines (ray._private.worker.shutdown).
_OUTPUT_GRACE_SECONDS = 0.5
_ended: collections.deque[tuple[float, str, Any]] = collections.deque(maxlen=256)


def track(driver: ExecutionDriver) -> None:
    """Make process exit wait for ``driver`` (until :func:`untrack`)."""
    global _hooked
    with _lock:
        _drivers[driver.driver_id] = driver
        if not _hooked:
            threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
            _hooked = True


def untrack(driver: ExecutionDriver) -> None:
    """The driver's execution ended or suspended: exit no longer waits for it."""
    with _lock:
        _drivers.pop(driver.driver_id, None)
        _ended.append((time.monotonic(), driver.exec_id, driver.service))


def _tracked() -> list[ExecutionDriver]:
    with _lock:
        return list(_drivers.values())


def _at_exit() -> None:
    drivers = _tracked()
    if not drivers:
        return
    if isinstance(getattr(sys, "last_value", None), KeyboardInterrupt):
        _abandon(drivers)
        return
    for driver in drivers:
        driver.exiting.set()
        _say(
            f"kitaru: waiting for execution {driver.exec_id} to finish or suspend on a wait "
            f"(Ctrl-C leaves it interrupted; `kitaru executions resume {driver.exec_id}` continues it)"
        )
    try:
        # Polls rather than Thread.join: a Ctrl-C landing inside join() marks a running thread as stopped (bpo-45274).
        while _tracked():
            time.sleep(0.1)
    except KeyboardInterrupt:
        _abandon(_tracked())


def abandon_all(*, cancel_tasks: bool = True) -> list[str]:
    """Leave every execution this process drives ``interrupted`` (its lease released), one line each; their ids."""
    drivers = _tracked()
    _abandon(drivers, cancel_tasks=cancel_tasks)
    return [driver.exec_id for driver in drivers]


def _abandon(drivers: list[ExecutionDriver], *, cancel_tasks: bool = True) -> None:
    for driver in drivers:
        driver.abandon(cancel_tasks=cancel_tasks)
        _say(f"kitaru: execution {driver.exec_id} left interrupted; `kitaru executions resume {driver.exec_id}` continues it")


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed at exit
        pass


def leave_ray(log_to_driver: bool) -> None:
    """Disconnect from Ray at exit, waiting for workers' output only as long as some may still be on its way.

    Every checkpoint's output is in its execution's logs; Ray also copies it to this terminal
    (``log_to_driver``) a moment later. When no driver is left running, and no execution that
    ended within that moment has a checkpoint that printed, nothing is on its way and Ray's
    fixed wait is skipped. Anything in doubt (a driver still here, a server not answering)
    leaves the exit to Ray.
    """
    import ray

    if not ray.is_initialized() or _tracked():
        return
    wait = 0.0
    if log_to_driver:
        now = time.monotonic()
        for ended_at, exec_id, service in list(_ended):
            if now - ended_at >= _OUTPUT_GRACE_SECONDS:
                continue
            try:
                printed = bool(service.get_logs(exec_id, source="step", limit=1))
            except Exception:  # noqa: BLE001 - in doubt, Ray waits as it always does
                return
            if printed:
                wait = max(wait, ended_at + _OUTPUT_GRACE_SECONDS - now)
    if wait > 0:
        time.sleep(wait)
    ray.shutdown()
