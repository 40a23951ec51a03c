"""The life of one checkpoint call, as a coroutine on the driver's runtime loop.

Order of events, which is what makes the durability invariant hold:

1. wait until every call it consumes (and every ``after=``) is committed;
2. reuse the execution's own committed record (resume), or a cached output;
3. otherwise run attempts (a Ray task each, or inline), each attempt's outcome
   committed before the next attempt starts and before the value is released.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import time
import uuid
from typing import TYPE_CHECKING, Any

from kitaru._caching import cache_key
from kitaru._values import map_nested, resolve_path
from kitaru.errors import FailureOrigin, KitaruCancelledError, KitaruTimeoutError, KitaruUsageError
from kitaru.runtime._attempt import describe_error, run_attempt
from kitaru.runtime._commit import event, finished_operation
from kitaru.runtime._replay import Decision
from kitaru.runtime._tasks import remote_function
from kitaru.runtime.future import MISSING, CheckpointFuture, value_of
from kitaru.storage import SerializationError, store_value

if TYPE_CHECKING:
    from kitaru.checkpoint import Checkpoint
    from kitaru.runtime._driver import ExecutionDriver

_ANNOUNCE_AFTER_SECONDS = 0.05
_PREVIEW_CHARS = 200
_PREVIEW_ITEMS = 20
DONE_STATUSES = frozenset({"completed", "cached", "replayed", "overridden"})
_FINISH_CALLS = 1024
_slots: asyncio.Semaphore | None = None


@dataclasses.dataclass
class CallSpec:
    """What the flow body asked for: one invocation of a checkpoint."""

    checkpoint: Checkpoint
    invocation_id: str
    call_id: str
    seq: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    upstream: list[CheckpointFuture]
    after: list[CheckpointFuture]
    replay: Decision | None = None


@dataclasses.dataclass
class CallResult:
    """A settled call: its committed output (or error), and where its value is."""

    invocation_id: str
    call_id: str
    status: str
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    value_ref: Any = None
    value: Any = MISSING

    @property
    def ok(self) -> bool:
        return self.status in DONE_STATUSES


async def execute_call(driver: ExecutionDriver, spec: CallSpec) -> CallResult:
    """Run (or reuse) one call; returns once its outcome is committed."""
    upstream = [await asyncio.wrap_future(f._future) for f in spec.upstream]
    for result in [*upstream, *[await asyncio.wrap_future(f._future) for f in spec.after]]:
        if not result.ok:
            return CallResult(spec.invocation_id, spec.call_id, "failed", error=_upstream_error(result))
    parent_call_ids = [f.call_id for f in (*spec.upstream, *spec.after)]
    if driver.cancelled.is_set():
        return CallResult(spec.invocation_id, spec.call_id, "cancelled", error=_cancelled_error(driver))

    existing = driver.existing_calls.get(spec.invocation_id)
    if existing is not None and existing["status"] in DONE_STATUSES:
        return CallResult(spec.invocation_id, spec.call_id, existing["status"], output=existing["output"])

    args, kwargs, digest_inputs = _substitute(
        spec.args, spec.kwargs, upstream_by_id={f.invocation_id: r for f, r in zip(spec.upstream, upstream, strict=True)}
    )
    checkpoint = spec.checkpoint
    args_for_preview, kwargs_for_preview = spec.args, spec.kwargs
    decision = spec.replay
    if decision is not None and decision.action == "live":
        checkpoint, args, kwargs = _apply_live_overrides(checkpoint, decision, args, kwargs)
    record = {
        "exec_id": driver.exec_id,
        "invocation_id": spec.invocation_id,
        "call_id": spec.call_id,
        "seq": spec.seq,
        "name": checkpoint.name,
        "checkpoint_type": checkpoint.type,
        "parent_call_ids": parent_call_ids,
        "created_at": time.time(),
        "original_call_id": decision.original.record.get("call_id") if decision and decision.original else None,
        "inputs": _inputs_preview(checkpoint.func, args_for_preview, kwargs_for_preview),
    }
    if decision is not None and decision.action in ("reuse", "override"):
        return await _settle_without_running(driver, spec, record, decision)
    try:
        record["cache_key"] = cache_key(checkpoint.import_path, checkpoint.func, digest_inputs, driver.settings.storage_url)
    except SerializationError:
        record["cache_key"] = None  # inputs that cannot be serialized are never cached
    if record["cache_key"] and driver.cache_enabled(checkpoint):
        hit = await driver.in_thread(driver.service.find_cached_output, record["cache_key"])
        if hit is not None:
            await driver.commit(
                [
                    {
                        **record,
                        "op": "attempt_finished",
                        "status": "cached",
                        "output": hit["output"],
                        "original_call_id": hit["call_id"],
                        "events": [event(record, "checkpoint.returned", cached=True)],
                    }
                ]
            )
            return CallResult(spec.invocation_id, spec.call_id, "cached", output=hit["output"])

    first_attempt = (existing or {}).get("attempt_count", 0) + 1
    last_attempt = first_attempt + checkpoint.retries
    for attempt in range(first_attempt, last_attempt + 1):
        attempt_record = {**record, "attempt": attempt}
        announced = _Announcement(driver, {**attempt_record, "op": "call_started", "started_at": time.time()})
        try:
            settled = await _run_attempt(driver, spec, checkpoint, attempt_record, attempt == last_attempt, args, kwargs)
        finally:
            announced.cancel()
        if settled.ok:
            return settled
        if attempt < last_attempt:
            await asyncio.sleep(checkpoint.retry_delay * checkpoint.retry_backoff ** (attempt - first_attempt))
    return settled


async def _run_attempt(
    driver: ExecutionDriver,
    spec: CallSpec,
    checkpoint: Checkpoint,
    record: dict[str, Any],
    is_last: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> CallResult:
    """Run one attempt of ``checkpoint`` (the spec's, or a replay's ``code`` override) and commit its outcome.

    An isolated attempt's outcome goes from the Ray task straight to the runtime
    actor (Ray resolves the dependency), which stores the output, commits the
    attempt and answers the driver.
    """
    call = {
        "exec_id": driver.exec_id,
        "invocation_id": spec.invocation_id,
        "attempt": record["attempt"],
        "settings": driver.worker_settings,
        "is_replay": driver.is_replay,
        "environment": driver.environment,
    }
    started_at = time.time()
    if checkpoint.runtime == "inline":
        value, outcome = await driver.in_thread(_run_inline, driver, checkpoint.func, call, args, kwargs, record, is_last)
        return _settled(spec, outcome, value=value)

    import ray

    value_ref, outcome_ref, payload_ref = remote_function(checkpoint).remote(call, *args, **kwargs)
    driver.running_refs.add(value_ref)
    finished = asyncio.ensure_future(_finish_attempt(driver, record, is_last, outcome_ref, [value_ref, payload_ref]))
    try:
        outcome = await _within_timeout(finished, outcome_ref, checkpoint.timeout)
        return _settled(spec, outcome, value_ref=value_ref)
    except TimeoutError:
        ray.cancel(value_ref, force=True)
        timeout = KitaruTimeoutError(_timeout_message(spec.invocation_id, checkpoint), invocation_id=spec.invocation_id)
        error = describe_error(timeout, FailureOrigin.USER_CODE)
    except ray.exceptions.RayError as exc:
        error = describe_error(exc, FailureOrigin.RUNTIME)
    finally:
        finished.cancel()
        driver.running_refs.discard(value_ref)
    outcome = _failed_outcome(started_at, error)
    if driver.cancelled.is_set():
        outcome.update(status="cancelled", error=_cancelled_error(driver))
        is_last = True
    await driver.commit([finished_operation(record, outcome, is_last)])
    return _settled(spec, outcome)


async def _within_timeout(finished: asyncio.Future[dict[str, Any]], outcome_ref: Any, timeout: float | None) -> dict[str, Any]:
    """The attempt's answer. The timeout bounds the checkpoint's task: once the task has ended, storing its
    output takes as long as it takes (failing the attempt then would leave the actor to commit it completed)."""
    try:
        return await asyncio.wait_for(asyncio.shield(finished), timeout)
    except TimeoutError:
        import ray

        ended, _ = ray.wait([outcome_ref], timeout=0, fetch_local=False)
        if not ended:
            raise
    return await finished


async def _finish_attempt(
    driver: ExecutionDriver, record: dict[str, Any], is_last: bool, outcome_ref: Any, refs: list[Any]
) -> dict[str, Any]:
    """Have the runtime actor store the attempt's output and commit it.

    The value's and payload's refs go along only when the actor asks for them (a large
    output): lending a ref to the actor costs a round trip to this process, which most
    outputs, small enough to travel inside the outcome, do not need.

    The actor call goes out with the task, so that Ray hands the outcome on as soon as it
    exists. An actor call waiting on its argument holds about 25 KiB of this process's
    memory in Ray, so at most :data:`_FINISH_CALLS` of them are out at once (a wider
    fan-out's calls wait for a slot, and their commits for the earlier calls').
    """

    async def finish(*lent: list[Any]) -> dict[str, Any]:
        call = driver.actor.finish_attempt.remote(driver.worker_settings, record, is_last, outcome_ref, *lent)
        return await asyncio.wrap_future(call.future())

    async with _finish_slots():
        answer = await finish()
        return await finish(refs) if answer.get("needs_refs") else answer


def _finish_slots() -> asyncio.Semaphore:
    """The process's slots for actor calls out at once (created on the runtime loop, which is the only user)."""
    global _slots
    if _slots is None:
        _slots = asyncio.Semaphore(_FINISH_CALLS)
    return _slots


def _timeout_message(invocation_id: str, checkpoint: Checkpoint) -> str:
    """Why an attempt timed out: resources no node of the cluster offers (the task never started), or slow work."""
    import ray

    wanted = dict(checkpoint.ray_options.get("resources") or {})
    if checkpoint.ray_options.get("num_gpus"):
        wanted["GPU"] = checkpoint.ray_options["num_gpus"]
    available = ray.cluster_resources()
    missing = {name: amount for name, amount in wanted.items() if available.get(name, 0) < amount}
    if missing:
        offered = ", ".join(sorted(name for name in available if not name.startswith("node:"))) or "none"
        return (
            f"checkpoint {invocation_id!r} asked for resources {missing} that no node of the Ray cluster offers "
            f"(it offers: {offered}), so it never started within its timeout of {checkpoint.timeout} s; "
            "add a node with those resources or change ray_options."
        )
    return (
        f"checkpoint {invocation_id!r} did not finish within its timeout of {checkpoint.timeout} s; "
        "raise timeout= on the @checkpoint or make the work faster."
    )


def _settled(spec: CallSpec, outcome: dict[str, Any], *, value: Any = MISSING, value_ref: Any = None) -> CallResult:
    if outcome["status"] == "completed":
        return CallResult(
            spec.invocation_id, spec.call_id, "completed", output=outcome["output"], value_ref=value_ref, value=value
        )
    return CallResult(spec.invocation_id, spec.call_id, outcome["status"], error=outcome["error"])


async def _settle_without_running(
    driver: ExecutionDriver, spec: CallSpec, record: dict[str, Any], decision: Decision
) -> CallResult:
    """A replayed call: reuse the original's output (``replayed``) or take the override's (``overridden``)."""
    value = MISSING
    if decision.action == "override":
        value = decision.output
        what = f"the output override of {spec.invocation_id!r}"
        meta = await driver.in_thread(lambda: store_value(driver.storage, value, what=what))
        output, status = meta.to_dict(), "overridden"
    else:
        output, status = decision.original.record["output"], "replayed"
    now = time.time()
    await driver.commit(
        [
            {
                **record,
                "op": "attempt_finished",
                "status": status,
                "output": output,
                "started_at": now,
                "ended_at": now,
                "events": [event(record, "checkpoint.returned", **{status: True})],
            }
        ]
    )
    return CallResult(spec.invocation_id, spec.call_id, status, output=output, value=value)


def _apply_live_overrides(
    checkpoint: Checkpoint, decision: Decision, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """A live call of a replay with its ``input``, ``model`` or ``code`` override applied."""
    if decision.inputs:
        bound = inspect.signature(checkpoint.func).bind_partial(*args, **kwargs)
        unknown = set(decision.inputs) - set(inspect.signature(checkpoint.func).parameters)
        if unknown:
            raise KitaruUsageError(f"the input override names {sorted(unknown)}, which {checkpoint.name!r} does not take.")
        bound.arguments.update(decision.inputs)
        args, kwargs = bound.args, bound.kwargs
    if decision.model:
        kwargs = {**kwargs, "model": decision.model}
    if decision.code:
        checkpoint = checkpoint.with_function(_import_callable(decision.code))
    return checkpoint, args, kwargs


def _import_callable(path: str) -> Any:
    target = resolve_path(path)
    return getattr(target, "func", target)


@functools.lru_cache(maxsize=1024)
def _signature(func: Any) -> inspect.Signature:
    return inspect.signature(func)


def _inputs_preview(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, for people to read: JSON values as they are, upstream
    futures as ``{"from": invocation_id}``, anything else (or anything long) as a shortened repr."""
    from kitaru.storage.serializers import is_json_native

    def shown(value: Any) -> Any:
        if isinstance(value, CheckpointFuture):
            return {"from": value.invocation_id}
        if type(value) in (list, tuple) and any(isinstance(item, CheckpointFuture) for item in value):
            return [shown(item) for item in value[:_PREVIEW_ITEMS]]
        text = repr(value)
        return value if is_json_native(value) and len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS]

    try:
        bound = _signature(func).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {f"arg{i}": value for i, value in enumerate(args)} | kwargs
    return {name: shown(value) for name, value in bound.items()}


def _cancelled_error(driver: ExecutionDriver) -> dict[str, Any]:
    error = KitaruCancelledError(f"execution {driver.exec_id!r} was cancelled.", exec_id=driver.exec_id)
    return describe_error(error, FailureOrigin.RUNTIME)


class _Announcement:
    """Records a call as running only if it is still running after a moment.

    Calls that finish quickly are then committed once, with their outcome, instead
    of twice; what the UI shows live is only the slower calls, which is what matters.
    """

    def __init__(self, driver: ExecutionDriver, operation: dict[str, Any]) -> None:
        self.sent = False
        self._driver = driver
        self._operation = operation
        self._timer = asyncio.get_running_loop().call_later(_ANNOUNCE_AFTER_SECONDS, self._send)

    def _send(self) -> None:
        self.sent = True
        self._driver.record([self._operation])

    def cancel(self) -> None:
        self._timer.cancel()


def _failed_outcome(started_at: float, error: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "failed",
        "started_at": started_at,
        "ended_at": time.time(),
        "output": None,
        "error": error,
        "metadata": {},
        "artifacts": [],
        "events": [],
        "logs": [],
    }


def _substitute(
    args: tuple[Any, ...], kwargs: dict[str, Any], upstream_by_id: dict[str, CallResult]
) -> tuple[tuple[Any, ...], dict[str, Any], Any]:
    """Replace futures by what Ray should pass (an ObjectRef, or the loaded value) and by digests for the cache key."""

    def task_leaf(value: Any) -> Any:
        if isinstance(value, CheckpointFuture):
            result = upstream_by_id[value.invocation_id]
            return result.value_ref if result.value_ref is not None else value_of(result)
        return value

    def digest_leaf(value: Any) -> Any:
        if isinstance(value, CheckpointFuture):
            output = upstream_by_id[value.invocation_id].output
            return {"__kitaru_output__": output.get("digest") or output["sha256"]}
        return value

    def for_task(value: Any) -> Any:
        return map_nested(value, task_leaf)

    def for_digest(value: Any) -> Any:
        return map_nested(value, digest_leaf, tuples_as_lists=True)

    return (
        tuple(for_task(a) for a in args),
        {k: for_task(v) for k, v in kwargs.items()},
        {"args": [for_digest(a) for a in args], "kwargs": {k: for_digest(v) for k, v in sorted(kwargs.items())}},
    )


def _run_inline(
    driver: ExecutionDriver,
    fn: Any,
    call: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    record: dict[str, Any],
    is_last: bool,
) -> tuple[Any, dict[str, Any]]:
    """An inline attempt, committed from the same thread: for trivial glue every hop between threads counts."""
    from kitaru.runtime._attempt import resolve_refs

    value, outcome = run_attempt(fn, call, resolve_refs(args), resolve_refs(kwargs))
    driver.service_for_commits().apply([finished_operation(record, outcome, is_last)])
    return value, outcome


def _upstream_error(result: CallResult) -> dict[str, Any]:
    return {**(result.error or {}), "upstream": result.invocation_id}


def new_call_id() -> str:
    return uuid.uuid4().hex
