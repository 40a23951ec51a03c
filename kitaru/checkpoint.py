"""``@checkpoint``: a durable unit of work, run as a Ray task and persisted.

This module holds the decorator and the checkpoint's options; the runtime owns the
rest of the call path (its Ray task, value resolution, :class:`CheckpointFuture`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from kitaru._context import require_flow_body
from kitaru.errors import KitaruUsageError
from kitaru.runtime.future import CheckpointFuture

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

    def __call__(self, *args: Any, id: str | None = None, after: Any = None, **kwargs: Any) -> T:
        """Run the checkpoint in the current flow and return its value (once it is committed)."""
        driver = require_flow_body(f"checkpoint {self.name!r}")
        return driver.submit(self, args, kwargs, id=id, after=after).result()

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

    def __repr__(self) -> str:
        return f"<Checkpoint {self.import_path}>"


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
