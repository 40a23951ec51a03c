"""The process's Ray session: started on first need, never at import.

Which Ray a run uses, in order: an initialised Ray in this process; the cluster
named by ``KITARU_RAY_ADDRESS`` (``auto``, ``ray://…`` or ``http://…``); the warm
local Ray of this ``KITARU_HOME`` (see :mod:`kitaru.runtime.warm`; a process that joined
it exits, leaving its executions ``interrupted``, when it goes away); a new private
instance (``address="local"``, so a cluster that ``ray start`` left running is
never joined silently).

Ray ties the processes it starts to the *thread* that called ``ray.init``
(they get ``PR_SET_PDEATHSIG``): when that thread ends, Ray dies with it. So
``ray.init`` runs on the main thread, or on an owner thread that lives as long
as the process; the threads calling ``.run()`` (a web handler, a thread pool)
only submit work.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kitaru.config import Settings

T = TypeVar("T")

_lock = threading.RLock()
_session: dict[str, Any] = {}

# Agent checkpoints mostly wait on I/O (model calls, HTTP), so a call reserves a tenth
# of a core by default and a 2-core machine runs 20 of them at once; give CPU-bound
# checkpoints a full core with ray_options={"num_cpus": 1}.
DEFAULT_CHECKPOINT_NUM_CPUS = 0.1


def ensure_ray(settings: Settings, *, log_to_driver: bool = True, first_worker: bool = False) -> None:
    """Initialise Ray in this process unless it already is.

    ``log_to_driver=False`` keeps Ray from copying worker output to this process's
    stdout (the CLI: its stdout is the command's result; Kitaru captures checkpoint
    output as logs anyway). ``first_worker=True`` (a new run, whose first checkpoint
    will need one) has a joined Ray start this driver's first worker right away.
    """
    import ray

    with _lock:
        if ray.is_initialized():
            _session.setdefault("job_id", ray.get_runtime_context().get_job_id())
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        common: dict[str, Any] = {"logging_level": logging.WARNING, "configure_logging": True, "log_to_driver": log_to_driver}
        warm = None
        if settings.ray_address:
            arguments = {"address": settings.ray_address, **common}
        else:
            from kitaru.runtime import warm as warm_ray

            warm = warm_ray.join_or_start(settings.home)
            if warm is not None:
                warm_ray.use_auth_mode(warm.auth_mode)
                arguments = {"address": warm.gcs_address, **common}
            else:
                # Ray keeps only num_cpus idle workers (and starts one in about a second); with a
                # tenth of a core per checkpoint, keep enough warm for a full fan-out.
                cpus = os.cpu_count() or 1
                os.environ.setdefault("RAY_num_workers_soft_limit", str(max(cpus, int(cpus / DEFAULT_CHECKPOINT_NUM_CPUS))))
                arguments = {"address": "local", "include_dashboard": False, **common}
        context = on_owner_thread(lambda: ray.init(**arguments))
        if not _session.get("exit_hooked"):
            import atexit

            from kitaru.runtime._exit import leave_ray

            atexit.register(leave_ray, log_to_driver)  # registered after Ray's own hook, so it runs first
        _session.clear()
        _session["exit_hooked"] = True
        _session["job_id"] = ray.get_runtime_context().get_job_id()
        _session["warm"] = warm is not None
        _session["dashboard_url"] = (warm.dashboard_url if warm else None) or getattr(context, "dashboard_url", None) or None
        if first_worker and (warm is not None or settings.ray_address):
            _start_a_worker()
        if warm is not None:
            from kitaru.runtime._ray_watch import watch_ray

            joined = _session["joined"] = object()
            watch_ray(
                warm.gcs_address,
                f"the warm local Ray of {settings.home} ({warm.gcs_address})",
                still_joined=lambda: _session.get("joined") is joined and ray.is_initialized(),
            )


def _start_a_worker() -> None:
    """Have the joined Ray start this driver's first worker now, without waiting for it.

    A shared Ray starts workers for a new driver only when it asks for one, and a worker takes
    about a second to boot here: asked now, it boots while the execution is being recorded, and
    has Kitaru's attempt code imported by the time the first checkpoint reaches it.
    """
    import ray

    try:
        ray.remote(_prepare_worker).options(
            num_cpus=DEFAULT_CHECKPOINT_NUM_CPUS, num_returns=0, max_retries=0, name="kitaru-prepare-worker"
        ).remote()
    except Exception:  # noqa: BLE001 - only a head start: the first checkpoint asks for its worker anyway
        logging.getLogger(__name__).debug("could not ask Ray for a worker ahead of the first checkpoint", exc_info=True)


def _prepare_worker() -> None:
    try:
        import kitaru.runtime._attempt  # noqa: F401 - imported for what every attempt needs
    except Exception:  # noqa: BLE001 - only a head start: the first attempt imports it again and reports
        pass


def on_owner_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a thread that lives as long as the process (this one, when it is the main thread).

    Processes started from a short-lived thread die when it ends, so whatever starts
    them (``ray.init``) must run here.
    """
    if threading.current_thread() is threading.main_thread():
        return fn()
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    _owner_queue().put((fn, future))
    return future.result()


_owner_jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] | None = None


def _owner_queue() -> queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]:
    # A daemon thread is never joined: it lives until the process exits (a pool's thread would
    # end at interpreter shutdown, before Ray's own atexit shutdown, and take Ray down early).
    global _owner_jobs
    with _lock:
        if _owner_jobs is None:
            _owner_jobs = queue.SimpleQueue()
            threading.Thread(target=_serve_owner_jobs, args=(_owner_jobs,), name="kitaru-ray-owner", daemon=True).start()
        return _owner_jobs


def _serve_owner_jobs(jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]) -> None:
    while True:
        fn, future = jobs.get()
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            future.set_exception(exc)


def joined_warm_ray() -> bool:
    """Whether this process joined the warm local Ray (its workers do not inherit this process's environment)."""
    return bool(_session.get("warm"))


def driver_environment() -> str | None:
    """The key under which this process's working directory and environment are kept for workers of a shared Ray.

    Workers of the warm local Ray were started by its head, not by this process: they
    adopt these before each attempt (see :func:`kitaru.runtime._attempt.adopt_environment`).
    Kept in Ray's internal key-value store (a nested ObjectRef would make every task a
    borrower). ``None`` for a private Ray, whose workers inherit them.
    """
    if not joined_warm_ray():
        return None
    import json

    from ray.experimental import internal_kv

    with _lock:
        key = _session.get("environment")
        if key is None:
            key = f"kitaru-environment-{_session['job_id']}"
            internal_kv._internal_kv_put(key, json.dumps({"cwd": os.getcwd(), "env": dict(os.environ)}), namespace="kitaru")
            _session["environment"] = key
        return key


def dashboard_url() -> str | None:
    """The Ray dashboard of this session, where one runs."""
    url = _session.get("dashboard_url")
    return f"http://{url}" if url and not url.startswith("http") else url


def runtime_actor() -> Any:
    """The runtime actor of this node: one per node and Kitaru installation, detached, shared by every driver.

    Found by name (node id plus a tag of this installation), created by the first driver
    that needs it; later drivers, on the warm local Ray, reuse it instead of paying its
    start-up. It restarts in place when it dies (every operation it applies is idempotent).
    """
    import ray

    with _lock:
        job_id = ray.get_runtime_context().get_job_id()
        actor = _session.get("actor")
        if actor is None or _session.get("job_id") != job_id:
            actor = runtime_actor_on(ray.get_runtime_context().get_node_id())
            _session["actor"] = actor
            _session["job_id"] = job_id
        return actor


def runtime_actor_on(node_id: str) -> Any:
    """The runtime actor of the node ``node_id``, created there if it does not run yet."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from kitaru.runtime._actor import RuntimeActor

    return (
        ray.remote(RuntimeActor)
        .options(
            name=f"kitaru-runtime-{_installation_tag()}-{node_id}",
            namespace="kitaru",
            lifetime="detached",
            get_if_exists=True,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            num_cpus=0,
            max_restarts=-1,
            max_task_retries=-1,
            max_concurrency=1000,
        )
        .remote()
    )


def _installation_tag() -> str:
    """Tells Kitaru installations (and code versions) apart: a driver never hands its operations to another's actor."""
    import hashlib

    here = os.path.dirname(os.path.abspath(__file__))
    stamps = [f"{name}:{os.stat(os.path.join(here, name)).st_mtime_ns}" for name in ("_actor.py", "_commit.py", "_handoff.py")]
    return hashlib.blake2s(":".join([here, *stamps]).encode(), digest_size=6).hexdigest()


def session_key() -> str | None:
    """Identifies the current Ray session (remote functions are re-created for a new one)."""
    return _session.get("job_id")
