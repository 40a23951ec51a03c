"""The driver of one execution: runs the flow body, hands calls to the runtime loop, holds the lease."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from kitaru._context import current_driver
from kitaru._logcapture import LogSink, capture
from kitaru._values import map_nested
from kitaru.config import Settings
from kitaru.contracts.launch import DRIVER_PREFIX_ENV
from kitaru.errors import (
    FailureOrigin,
    KitaruBackendError,
    KitaruCancelledError,
    KitaruDivergenceError,
    KitaruStateError,
    KitaruUsageError,
    KitaruWaitAbortedError,
)
from kitaru.runtime._calls import CallSpec, execute_call, new_call_id
from kitaru.runtime._commit import GroupCommitter
from kitaru.runtime._loop import runtime_loop, spawn
from kitaru.runtime._replay import ReplayPlan
from kitaru.runtime.future import CheckpointFuture
from kitaru.storage import Storage, store_value

if TYPE_CHECKING:
    from kitaru_server import KitaruService

    from kitaru.checkpoint import Checkpoint

_log = logging.getLogger("kitaru.runtime")
_local_committer: GroupCommitter | None = None
_CANCEL_POLL_SECONDS = 0.25
_BEAT_JOIN_SECONDS = 5.0
_WAIT_POLL_MAX_SECONDS = 0.1  # bounds how long live input waits to be noticed (one indexed read per poll)
_blocking_pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="kitaru-io")


def local_committer() -> GroupCommitter:
    """The process's committer for what the flow body records itself (metadata, progress events)."""
    global _local_committer
    if _local_committer is None:
        _local_committer = GroupCommitter()
    return _local_committer


class ExecutionDriver:
    """Drives one execution in this process (a fresh run, or a resume of an earlier one)."""

    def __init__(
        self,
        *,
        exec_id: str,
        flow_name: str,
        settings: Settings,
        worker_settings: dict[str, Any],
        service: KitaruService,
        storage: Storage,
        cache_overrides: tuple[bool | None, ...],
        existing_calls: dict[str, dict[str, Any]] | None = None,
        plan: ReplayPlan | None = None,
        auto_retries: int = 0,
    ) -> None:
        from kitaru.runtime._ray import driver_environment, runtime_actor

        self.exec_id = exec_id
        self.flow_name = flow_name
        self.settings = settings
        self.worker_settings = worker_settings
        self.service_url = worker_settings["service_url"]
        self.api_key = worker_settings.get("api_key")
        self.service = service
        self.storage = storage
        self.existing_calls = existing_calls or {}
        self.plan = plan
        self.is_replay = plan is not None
        self.returns_handles = worker_settings.get("checkpoint_returns", settings.checkpoint_returns) == "handle"
        self._auto_retries = auto_retries
        # a launcher may choose a prefix, to tell its own driver from one that raced it to the execution
        self.driver_id = f"{os.environ.get(DRIVER_PREFIX_ENV, '')[:16]}{uuid.uuid4().hex}"
        self._cache_overrides = cache_overrides
        self.actor = runtime_actor()
        self.environment = driver_environment()
        self._loop = runtime_loop()
        self._counters: dict[str, int] = {}
        self._used_ids: set[str] = set()
        self._seq = 0
        self._inflight: list[CheckpointFuture] = []
        self._unsent: list[dict[str, Any]] = []  # recorded on the loop, not yet sent to the actor
        self._sink = LogSink(exec_id, "runner", level=settings.log_level)
        self._stop = threading.Event()
        self._lost = threading.Event()
        self.cancelled = threading.Event()
        self.exiting = threading.Event()  # the process is exiting: suspend at the next wait instead of polling on
        self._abandoned = threading.Event()
        self.running_refs: set[Any] = set()
        self.thread: threading.Thread | None = None
        self._beat: threading.Thread | None = None

    # --- called by the flow body ------------------------------------------------------------

    def submit(
        self, checkpoint: Checkpoint, args: tuple[Any, ...], kwargs: dict[str, Any], *, id: str | None, after: Any
    ) -> CheckpointFuture:
        """Start a call of ``checkpoint``; returns its future at once."""
        self._check_still_ours()
        invocation_id = self._next_invocation_id(checkpoint.name, id)
        decision = self.plan.decide(self._seq, "call", invocation_id, checkpoint.name) if self.plan else None
        existing = self.existing_calls.get(invocation_id)
        spec = CallSpec(
            checkpoint=checkpoint,
            invocation_id=invocation_id,
            call_id=existing["call_id"] if existing else new_call_id(),
            seq=self._seq,
            args=args,
            kwargs=kwargs,
            upstream=_futures_in((args, kwargs)),
            after=_as_future_list(after),
            replay=decision,
        )
        self._seq += 1
        future = CheckpointFuture(invocation_id, spec.call_id, spec_future=spawn(execute_call(self, spec)))
        self._inflight.append(future)
        return future

    def wait_for_input(
        self, *, name: str, schema: dict[str, Any] | None, question: str | None, timeout: float | None, metadata: dict[str, Any]
    ) -> Any:
        """Record a wait and poll for its input; suspend the execution when ``timeout`` passes."""
        self._check_still_ours()
        wait_name = self._next_invocation_id(name, None)
        seq = self._seq
        self._seq += 1
        decision = self.plan.decide(seq, "wait", wait_name, name) if self.plan else None
        record = {"name": wait_name, "seq": seq, "question": question, "schema": schema, "metadata": metadata}
        if decision is not None and decision.action == "reuse":
            record.update(status="answered", value=decision.original.record["value"], answered_at=time.time())
        opened = self.service.open_wait(self.exec_id, self.driver_id, record)
        if opened["status"] == "pending" and prompts_on_terminal():
            from kitaru.runtime._prompt import prompt_in_background

            prompt_in_background(self.exec_id, wait_name, question, schema, service_url=self.service_url, api_key=self.api_key)
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.02
        while True:
            current = self.service.get_wait(self.exec_id, wait_name)
            if current["status"] == "answered":
                self.service.set_live_status(self.exec_id, self.driver_id, "running")
                return current["value"]
            if current["status"] == "aborted":
                self.service.set_live_status(self.exec_id, self.driver_id, "running")
                raise KitaruWaitAbortedError(f"wait {wait_name!r} was aborted.", exec_id=self.exec_id, wait=wait_name)
            self._check_still_ours()
            timed_out = deadline is not None and time.monotonic() >= deadline
            leaving = self.exiting.is_set() and not prompts_on_terminal()
            if (timed_out or leaving) and self.service.suspend_execution(self.exec_id, self.driver_id, wait_name):
                if leaving:
                    print(
                        f"kitaru: execution {self.exec_id} suspended on wait {wait_name!r}; input resumes it "
                        f"(`kitaru executions input {self.exec_id} --wait {wait_name} --value ...`)",
                        file=sys.stderr,
                        flush=True,
                    )
                raise _Suspended(wait_name)
            time.sleep(interval)
            interval = min(interval * 1.5, _WAIT_POLL_MAX_SECONDS)

    def log_metadata(self, fields: dict[str, Any]) -> None:
        self._record_from_thread([{"op": "metadata", "exec_id": self.exec_id, "fields": fields}])

    def add_event(self, kind: str, payload: dict[str, Any]) -> None:
        entry = {"exec_id": self.exec_id, "timestamp": time.time(), "kind": kind, "invocation_id": None, "payload": payload}
        self._record_from_thread([{"op": "events", "entries": [entry]}])

    # --- used by call coroutines (on the runtime loop) --------------------------------------

    def cache_enabled(self, checkpoint: Checkpoint) -> bool:
        """Cache precedence: settings < flow decorator < checkpoint decorator < ``.run()``."""
        if self.is_replay:
            return False  # the live part of a replay never reads the cache
        run_arg, flow_arg = self._cache_overrides
        for choice in (run_arg, checkpoint.cache, flow_arg):
            if choice is not None:
                return choice
        return self.settings.cache

    async def commit(self, operations: list[dict[str, Any]]) -> None:
        """Commit ``operations`` through the runtime actor; returns once they are durable."""
        await asyncio.wrap_future(self.actor.commit.remote(self.service_url, self.api_key, operations).future())

    def service_for_commits(self) -> Any:
        """The service of the run's own settings: inline calls commit from this process (the actor would add a hop)."""
        from kitaru._service import connect_service

        return connect_service(self.service_url, self.api_key)

    def record(self, operations: list[dict[str, Any]]) -> None:
        """Send ``operations`` to the runtime actor without waiting for them (call on the runtime loop).

        What is recorded in one turn of the loop travels in one actor call: a wide fan-out
        announces thousands of running calls at about the same moment.
        """
        if not self._unsent:
            self._loop.call_soon(self._send_recorded)
        self._unsent.extend(operations)

    def _send_recorded(self) -> None:
        operations, self._unsent = self._unsent, []
        self.actor.record.remote(self.service_url, self.api_key, operations)

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work (database reads, inline calls) off the runtime loop."""
        return await self._loop.run_in_executor(_blocking_pool, functools.partial(fn, *args))

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> threading.Thread:
        """Run the flow body in a background thread of this process (which waits for it at exit)."""
        from kitaru.runtime._exit import track

        self.thread = threading.Thread(
            target=self._drive, args=(func, args, kwargs), name=f"kitaru-driver-{self.exec_id}", daemon=True
        )
        track(self)
        self._beat = threading.Thread(target=self._heartbeat, name=f"kitaru-lease-{self.exec_id}", daemon=True)
        self._beat.start()
        self.thread.start()
        return self.thread

    def _drive(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        token = current_driver.set(self)
        try:
            while True:
                try:
                    with capture(self._sink), _explain_load(self.returns_handles):
                        result = func(*args, **kwargs)
                        if inspect.isawaitable(result):
                            result = asyncio.run(_await(result))
                    self._settle_inflight()
                    meta = store_value(self.storage, result, what=f"the return value of flow {self.flow_name!r}")
                except _Suspended:
                    self._settle_inflight()
                    self._flush_logs(final=True)
                    return
                except BaseException as exc:  # noqa: BLE001 - the failure is recorded on the execution
                    self._settle_inflight()
                    if self.cancelled.is_set() or isinstance(exc, (KitaruCancelledError, KitaruWaitAbortedError)):
                        self._finish("cancelled", failure=failure_of(exc))
                    elif self._auto_retries > 0 and not isinstance(exc, KitaruDivergenceError) and not self._lost.is_set():
                        self._auto_retries -= 1
                        self._restart_body()
                        continue
                    else:
                        self._finish("failed", failure=failure_of(exc))
                else:
                    self._finish("completed", result=meta.to_dict())
                return
        finally:
            from kitaru.runtime._exit import untrack

            current_driver.reset(token)
            self._stop.set()
            untrack(self)

    def _restart_body(self) -> None:
        """Run the flow body again (a flow-level retry): committed calls are reused, failed ones re-run."""
        self.existing_calls = self.service.existing_calls(self.exec_id)
        self._counters.clear()
        self._used_ids.clear()
        self._seq = 0
        self._inflight.clear()

    def _check_still_ours(self) -> None:
        if self.cancelled.is_set():
            raise KitaruCancelledError(f"execution {self.exec_id!r} was cancelled.", exec_id=self.exec_id)
        if self._lost.is_set():
            raise KitaruStateError(
                f"execution {self.exec_id!r} was taken over by another driver (its lease lapsed); this driver stops here.",
                exec_id=self.exec_id,
            )

    def abandon(self, *, cancel_tasks: bool = True) -> None:
        """The process is going away (Ctrl-C at exit, its Ray gone): release the lease so the execution reads ``interrupted``.

        Nothing more is recorded by this driver; ``resume`` continues the execution from its committed calls.
        ``cancel_tasks=False`` when Ray itself is gone (its tasks went with it; asking it would hang).
        """
        self._abandoned.set()
        self._stop.set()
        if cancel_tasks:
            import ray

            for ref in list(self.running_refs):
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - Ray may already be shutting down; its tasks end with this process
                    pass
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(_BEAT_JOIN_SECONDS)  # a renewal in flight must not extend the lease released below
        self._flush_logs(final=True)
        self.service.renew_lease(self.exec_id, self.driver_id, 0.001)  # lapses at once (a server takes no lease <= 0)

    def _finish(self, status: str, **outcome: Any) -> None:
        if self._abandoned.is_set():
            return
        self._flush_logs(final=True)
        self.service.finish_execution(self.exec_id, self.driver_id, status, **outcome)

    def _settle_inflight(self) -> None:
        """Let every started call reach its committed outcome before the execution ends."""
        for future in self._inflight:
            try:
                future._future.result()
            except BaseException:  # noqa: BLE001 - a call's failure is already recorded
                pass

    def _heartbeat(self) -> None:
        """Renew the lease (every third of it) and watch for a cancellation request (more often).

        A server that cannot be reached does not end the heartbeat: each request retries through
        an outage (``KITARU_SERVER_RETRY_SECONDS``), and the next beat tries again after that.
        Only a renewal the server refuses (another driver took the execution) ends it.
        """
        renew_every = max(self.settings.lease_seconds / 3, 0.05)
        last_renewal = time.monotonic()
        while not self._stop.wait(min(renew_every, _CANCEL_POLL_SECONDS)):
            try:
                if self.service.cancel_requested(self.exec_id):
                    self._cancel()
                    return
                if time.monotonic() - last_renewal >= renew_every:
                    last_renewal = time.monotonic()
                    self._flush_logs()
                    if not self.service.renew_lease(self.exec_id, self.driver_id, self.settings.lease_seconds):
                        self._lost.set()
                        return
            except KitaruBackendError as exc:
                _log.warning("execution %s: the server did not answer the heartbeat (%s); trying again", self.exec_id, exc)

    def _cancel(self) -> None:
        """Stop running tasks (force-killing sync code) and end the execution as cancelled at once."""
        import ray

        self.cancelled.set()
        for ref in list(self.running_refs):
            ray.cancel(ref, force=True)
        self._finish("cancelled", failure=None)

    def _flush_logs(self, *, final: bool = False) -> None:
        entries = self._sink.close() if final else self._sink.drain()
        if entries:
            self.service.apply([{"op": "logs", "entries": entries}])

    def _record_from_thread(self, operations: list[dict[str, Any]]) -> None:
        self._loop.call_soon_threadsafe(local_committer().record, self.service_url, self.api_key, operations)

    def _next_invocation_id(self, name: str, explicit: str | None) -> str:
        if explicit is not None:
            if explicit in self._used_ids:
                raise KitaruUsageError(
                    f"checkpoint id {explicit!r} is already used in this execution; give each call a unique id=."
                )
            self._used_ids.add(explicit)
            return explicit
        while True:
            count = self._counters.get(name, 0) + 1
            self._counters[name] = count
            candidate = name if count == 1 else f"{name}_{count}"
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate


def prompts_on_terminal() -> bool:
    """Whether a person may answer waits at this process's terminal (a local run on a TTY)."""
    stdin = sys.stdin
    return stdin is not None and stdin.isatty() and os.environ.get("KITARU_NO_PROMPT") is None


@contextlib.contextmanager
def _explain_load(returns_handles: bool) -> Iterator[None]:
    """``.load()`` on a checkpoint's value (a flow written for 0.21's handles) fails with the fix, not a bare AttributeError."""
    try:
        yield
    except AttributeError as exc:
        if returns_handles or exc.name != "load":
            raise
        raise KitaruUsageError(
            f"{type(exc.obj).__name__!s} has no .load(): checkpoints return their value in this version; drop .load(), "
            'or set checkpoint_returns="handle" ([tool.kitaru], KITARU_CHECKPOINT_RETURNS or kitaru.configure()) '
            "to get 0.21's handles."
        ) from exc


class _Suspended(BaseException):
    """Unwinds the flow body when a wait suspends the execution (not an error)."""


async def _await(awaitable: Any) -> Any:
    return await awaitable


def failure_of(exc: BaseException) -> dict[str, Any]:
    """The execution's failure record for an exception that escaped the flow body."""
    from kitaru.runtime._attempt import describe_error

    recorded = getattr(exc, "__kitaru_failure__", None)
    if recorded is not None:
        return dict(recorded)
    origin = FailureOrigin.DIVERGENCE if isinstance(exc, KitaruDivergenceError) else FailureOrigin.USER_CODE
    failure = describe_error(exc, origin)
    failure.pop("pickled", None)
    failure["invocation_id"] = getattr(exc, "invocation_id", None)
    return failure


def _futures_in(value: Any) -> list[CheckpointFuture]:
    found: list[CheckpointFuture] = []
    map_nested(value, lambda item: found.append(item) if isinstance(item, CheckpointFuture) else None)
    return found


def _as_future_list(after: Any) -> list[CheckpointFuture]:
    if after is None:
        return []
    items = after if isinstance(after, (list, tuple)) else [after]
    for item in items:
        if not isinstance(item, CheckpointFuture):
            raise KitaruUsageError(f"after= takes checkpoint futures (from .submit()), not {type(item).__name__}.")
    return list(items)
