"""Notices when the warm local Ray this process joined goes away, and leaves its executions resumable.

A driver joined to a Ray whose head died does not notice by itself: Ray's core worker
retries the head for a minute (``gcs_rpc_server_reconnect_timeout_s``) and then aborts the
process, and until then the lease heartbeat, which talks only to Kitaru's service, keeps
its executions ``running`` with no Ray left to run them. So a watch thread checks the
head's GCS port twice a second. Once it has refused connections for about a second (the
head crashed or ``kitaru down`` stopped it), every execution this process drives is
released (its lease lapses at once: it reads ``interrupted``), stderr says how to resume
each one, and the process exits with :data:`RAY_LOST_EXIT_CODE`: nothing it could still
do would reach Ray. ``resume`` continues the executions on a new warm Ray.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["RAY_LOST_EXIT_CODE", "watch_ray"]

RAY_LOST_EXIT_CODE = 75  # EX_TEMPFAIL: a temporary failure; resuming the executions continues them
_INTERVAL_SECONDS = 0.5
_REFUSALS = 3  # in a row: a head that is gone refuses at once, a busy one is slow to accept instead
_RELEASE_SECONDS = 15.0  # a lease that cannot be released in time lapses by itself


def watch_ray(gcs_address: str, what: str, *, still_joined: Callable[[], bool]) -> None:
    """Watch the Ray head at ``gcs_address`` (named ``what`` in messages) while ``still_joined()`` says this process uses it."""
    threading.Thread(target=_watch, args=(gcs_address, what, still_joined), name="kitaru-ray-watch", daemon=True).start()


def _watch(gcs_address: str, what: str, still_joined: Callable[[], bool]) -> None:
    refusals = 0
    while refusals < _REFUSALS:
        time.sleep(_INTERVAL_SECONDS)
        if not still_joined():
            return  # this process left that Ray (ray.shutdown()): its going away concerns it no more
        refusals = refusals + 1 if _refused(gcs_address) else 0
    _leave(what)


def _refused(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return False


def _leave(what: str) -> None:
    """Release this process's executions and exit: its Ray is gone."""
    from kitaru.runtime._exit import abandon_all

    _say(f"kitaru: {what} went away (stopped or crashed); this process cannot run its executions any more and exits")
    releasing = threading.Thread(target=abandon_all, kwargs={"cancel_tasks": False}, name="kitaru-release", daemon=True)
    releasing.start()
    releasing.join(_RELEASE_SECONDS)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    # Not sys.exit: the flow threads are blocked in calls to the dead Ray, and Ray's own exit hooks would hang on it.
    os._exit(RAY_LOST_EXIT_CODE)


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
