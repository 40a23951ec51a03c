"""``@checkpoint``: a durable unit of work, run as a Ray task and persisted."""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from kitaru._context import require_flow_body
from kitaru.errors import (
    FailureOrigin,
    KitaruCancelledError,
    KitaruExecutionError,
    KitaruRuntimeError,
    KitaruTimeoutError,
    KitaruUsageError,
)

__all__ = ["Checkpoint", "CheckpointFuture", "checkpoint"]

T = TypeVar("T")
_RUNTIMES = (None, "isolated", "inline")
_ALLOWED_RAY_OPTIONS = frozenset(
    {"num_cpus", "num_gpus", "memory", "resources", "runtime_env", "scheduling_strategy", "accelerator_type", "label_selector"}
)


class Checkpoint(Generic[T]):
    """A checkpoint function. Call it in a flow body to run it durably and get its value."""

    def __init__(
        self,
        func: Callable[..., T],
        *,
        retries: int = 0,
        retry_delay: float = 1.0,
        retry_backoff: float = 2.0,
        timeout: float | None = None,
        type: str | None = None,
        runtime: str | None = None,
        cache: bool | None = None,
        ray_options: dict[str, Any] | None = None,
    ) -> None:
        if retries < 0:
            raise KitaruUsageError(f"retries must be 0 or more, not {retries}.")
        if runtime not in _RUNTIMES:
            raise KitaruUsageError(f"runtime must be 'isolated' or 'inline', not {runtime!r}.")
        unknown = set(ray_options or {}) - _ALLOWED_RAY_OPTIONS
        if unknown:
            raise KitaruUsageError(
                f"ray_options {sorted(unknown)} are not supported; use {sorted(_ALLOWED_RAY_OPTIONS)} "
                "(Kitaru owns retries, so max_retries and retry_exceptions are not accepted)."
            )
        functools.update_wrapper(self, func)
        self.func = func
        self.name: str = func.__name__
        self.import_path = f"{func.__module__}:{func.__qualname__}"
        self.retries = retries
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self.timeout = timeout
        self.type = type
        self.runtime = runtime or "isolated"
        self.cache = cache
        self.ray_options = dict(ray_options or {})
        self._remote: Any = None
        self._remote_session: str | None = None
        self._lock = threading.Lock()

    def __call__(self, *args: Any, id: str | None = None, after: Any = None, **kwargs: Any) -> T:
        """Run the checkpoint in the current flow and return its value (once it is committed).

        With ``checkpoint_returns="handle"`` it returns the committed call's handle instead
        (``.load()`` gives the value; pass it to other checkpoints), as Kitaru 0.21 did.
        """
        driver = require_flow_body(f"checkpoint {self.name!r}")
        future = driver.submit(self, args, kwargs, id=id, after=after)
        value = future.result()
        return future if driver.returns_handles else value

    def submit(self, *args: Any, id: str | None = None, after: Any = None, **kwargs: Any) -> CheckpointFuture:
        """Start the checkpoint and return a future at once.

        Pass the future to other checkpoints: its value flows to them inside Ray.
        """
        driver = require_flow_body(f"checkpoint {self.name!r}")
        return driver.submit(self, args, kwargs, id=id, after=after)

    def map(self, *iterables: Any, **kwargs: Any) -> list[CheckpointFuture]:
        """Submit one call per element (zipped across ``iterables``); ``kwargs`` go to every call.

        Each iterable may be a plain list or a future of a list.
        """
        driver = require_flow_body(f"checkpoint {self.name!r}")
        columns = [_materialize(items) for items in iterables]
        return [driver.submit(self, tuple(row), dict(kwargs), id=None, after=None) for row in zip(*columns, strict=True)]

    def product(self, *iterables: Any, **kwargs: Any) -> list[CheckpointFuture]:
        """Submit one call per element of the cartesian product of ``iterables``."""
        driver = require_flow_body(f"checkpoint {self.name!r}")
        columns = [_materialize(items) for items in iterables]
        return [driver.submit(self, tuple(row), dict(kwargs), id=None, after=None) for row in itertools.product(*columns)]

    def with_function(self, func: Callable[..., Any]) -> Checkpoint[Any]:
        """A copy of this checkpoint (same name and options) running ``func`` instead (replay ``code`` overrides)."""
        copy = Checkpoint(
            func,
            retries=self.retries,
            retry_delay=self.retry_delay,
            retry_backoff=self.retry_backoff,
            timeout=self.timeout,
            type=self.type,
            runtime=self.runtime,
            cache=self.cache,
            ray_options=self.ray_options,
        )
        copy.name = self.name
        return copy

    def remote_function(self) -> Any:
        """The Ray remote function running this checkpoint's attempts (created once per Ray session)."""
        from kitaru.runtime._ray import DEFAULT_CHECKPOINT_NUM_CPUS, session_key

        with self._lock:
            session = session_key()
            if self._remote is None or self._remote_session != session:
                import ray

                from kitaru.runtime._attempt import run_attempt

                func = self.func

                def task(call: dict[str, Any], *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
                    return run_attempt(func, call, args, kwargs)

                task.__name__ = task.__qualname__ = self.name
                options = {"num_cpus": DEFAULT_CHECKPOINT_NUM_CPUS, **self.ray_options}
                self._remote = ray.remote(task).options(num_returns=2, max_retries=0, retry_exceptions=False, **options)
                self._remote_session = session
            return self._remote

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_remote"] = None
        state["_remote_session"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Checkpoint {self.import_path}>"


class CheckpointFuture:
    """A submitted checkpoint call. ``result()`` returns its value once it is committed."""

    def __init__(self, invocation_id: str, call_id: str, *, spec_future: concurrent.futures.Future[Any]) -> None:
        self.invocation_id = invocation_id
        self.call_id = call_id
        self._future = spec_future

    def done(self) -> bool:
        """Whether the call has settled (committed, or failed for good)."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        """The call's value; raises the checkpoint's error if it failed.

        Raises:
            KitaruTimeoutError: the call did not settle within ``timeout`` seconds.
        """
        try:
            outcome = self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise KitaruTimeoutError(
                f"checkpoint call {self.invocation_id!r} did not finish within {timeout} s; wait longer or check its logs.",
                invocation_id=self.invocation_id,
            ) from None
        if outcome.status == "cancelled":
            raise KitaruCancelledError(
                f"checkpoint call {self.invocation_id!r} was cancelled with its execution.", invocation_id=self.invocation_id
            )
        if not outcome.ok:
            raise _error_from(outcome.error or {}, outcome.invocation_id)
        return self._value_of(outcome)

    load = result

    def _value_of(self, outcome: Any) -> Any:
        from kitaru.runtime._calls import _MISSING

        if outcome.value is not _MISSING:
            return outcome.value
        if outcome.value_ref is not None:
            import ray

            outcome.value = ray.get(outcome.value_ref)
            return outcome.value
        from kitaru._context import current_driver
        from kitaru.storage import load_value

        driver = current_driver.get()
        storage = driver.storage if driver is not None else None
        if storage is None:
            raise KitaruRuntimeError(f"the value of {self.invocation_id!r} can only be loaded inside its flow.")
        outcome.value = load_value(storage, outcome.output)
        return outcome.value

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<CheckpointFuture {self.invocation_id} {state}>"


def _error_from(error: dict[str, Any], invocation_id: str) -> BaseException:
    """The exception the flow body sees for a failed call: the original one when it unpickles."""
    invocation = error.get("upstream") or invocation_id
    failure = {k: v for k, v in error.items() if k not in ("pickled", "upstream")}
    failure["invocation_id"] = invocation
    exc: BaseException | None = None
    if error.get("pickled") and error.get("origin") == FailureOrigin.USER_CODE.value:
        import cloudpickle

        try:
            exc = cloudpickle.loads(error["pickled"])
        except Exception:  # noqa: BLE001 - fall back to a described error
            exc = None
    if exc is None:
        origin = error.get("origin", FailureOrigin.UNKNOWN.value)
        exc = KitaruExecutionError(
            f"checkpoint {invocation!r} failed ({origin}): {error.get('type')}: {error.get('message')}. "
            "See its attempts and logs with KitaruClient().executions.get(exec_id).",
            invocation_id=invocation,
            origin=origin,
            original_type=error.get("type"),
            original_message=error.get("message"),
            traceback=error.get("traceback"),
        )
    exc.__kitaru_failure__ = failure  # type: ignore[attr-defined]
    return exc


def _materialize(items: Any) -> list[Any]:
    if isinstance(items, CheckpointFuture):
        items = items.result()
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise KitaruUsageError(f"map() and product() take lists (or futures of lists), not {type(items).__name__}.")
    return list(items)


@overload
def checkpoint(func: Callable[..., T]) -> Checkpoint[T]: ...
@overload
def checkpoint(
    func: None = None,
    *,
    retries: int = 0,
    retry_delay: float = 1.0,
    retry_backoff: float = 2.0,
    timeout: float | None = None,
    type: str | None = None,
    runtime: str | None = None,
    cache: bool | None = None,
    ray_options: dict[str, Any] | None = None,
) -> Callable[[Callable[..., T]], Checkpoint[T]]: ...


def checkpoint(func: Callable[..., T] | None = None, **options: Any) -> Any:
    """Declare a checkpoint: a function whose output is persisted, so finished work never repeats.

    Args:
        retries: Attempts after the first (Ray's own retries stay off).
        retry_delay: Seconds before the first retry.
        retry_backoff: Factor applied to the delay for each further retry.
        timeout: Seconds an attempt may run before it is cancelled and fails.
        type: A label (``"llm_call"``, ``"tool_call"`` or free text).
        runtime: ``"isolated"`` (a Ray task, the default) or ``"inline"`` (in the driver).
        cache: Reuse outputs of identical earlier calls (default: the configured cache setting).
        ray_options: Passed to Ray (num_cpus, num_gpus, memory, resources, runtime_env,
            scheduling_strategy). The default is ``num_cpus=0.1``: agent checkpoints mostly
            wait on I/O; give CPU-bound ones ``{"num_cpus": 1}``.
    """
    if func is not None:
        return Checkpoint(func, **options)
    return lambda f: Checkpoint(f, **options)
