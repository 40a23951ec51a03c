"""The process's Ray session: started on first need, never at import.

Embedded mode starts a new local Ray instance (``address="local"``) so it never
silently joins a cluster that ``ray start`` left running; ``KITARU_RAY_ADDRESS``
(``auto``, ``ray://…`` or ``http://…``) joins an existing cluster instead.
Ray must be initialised from a long-lived thread (it ties its processes to the
thread that started it), so this is called from the thread calling ``.run()``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from kitaru.config import Settings

_lock = threading.RLock()
_session: dict[str, Any] = {}

# Agent checkpoints mostly wait on I/O (model calls, HTTP), so a call reserves a tenth
# of a core by default and a 2-core machine runs 20 of them at once; give CPU-bound
# checkpoints a full core with ray_options={"num_cpus": 1}.
DEFAULT_CHECKPOINT_NUM_CPUS = 0.1


def ensure_ray(settings: Settings, *, log_to_driver: bool = True) -> None:
    """Initialise Ray in this process unless it already is.

    ``log_to_driver=False`` keeps Ray from copying worker output to this process's
    stdout (the CLI: its stdout is the command's result; Kitaru captures checkpoint
    output as logs anyway).
    """
    import ray

    with _lock:
        if ray.is_initialized():
            _session.setdefault("job_id", ray.get_runtime_context().get_job_id())
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        common: dict[str, Any] = {"logging_level": logging.WARNING, "configure_logging": True, "log_to_driver": log_to_driver}
        if settings.ray_address:
            context = ray.init(address=settings.ray_address, **common)
        else:
            # Ray keeps only num_cpus idle workers (and starts one in about a second); with a
            # tenth of a core per checkpoint, keep enough warm for a full fan-out.
            cpus = os.cpu_count() or 1
            os.environ.setdefault("RAY_num_workers_soft_limit", str(max(cpus, int(cpus / DEFAULT_CHECKPOINT_NUM_CPUS))))
            context = ray.init(address="local", include_dashboard=False, **common)
        _session.clear()
        _session["job_id"] = ray.get_runtime_context().get_job_id()
        _session["dashboard_url"] = getattr(context, "dashboard_url", None) or None


def dashboard_url() -> str | None:
    """The Ray dashboard of this session, where one runs."""
    url = _session.get("dashboard_url")
    return f"http://{url}" if url and not url.startswith("http") else url


def runtime_actor() -> Any:
    """This driver's runtime actor (created on first use)."""
    import ray

    with _lock:
        job_id = ray.get_runtime_context().get_job_id()
        actor = _session.get("actor")
        if actor is None or _session.get("job_id") != job_id:
            from kitaru.runtime._actor import RuntimeActor

            actor = (
                ray.remote(RuntimeActor).options(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=1000).remote()
            )
            _session["actor"] = actor
            _session["job_id"] = job_id
        return actor


def session_key() -> str | None:
    """Identifies the current Ray session (remote functions are re-created for a new one)."""
    return _session.get("job_id")
