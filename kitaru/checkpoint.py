"""``@checkpoint``: a durable unit of work, run as a Ray task and persisted.

This module holds the decorator and the checkpoint's options; the runtime owns the
rest of the call path (its Ray task, value resolution, :class:`CheckpointFuture`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from kitaru._context import require_flow_body
from kitaru.errors import KitaruUsageError
from kitaru.runtime.future import CheckpointFuture

__all__ = ["Checkpoint", "CheckpointFuture", "CheckpointOptions", "checkpoint"]

T = TypeVar("T")
_RUNTIMES = (None, "isolated", "inline")
_ALLOWED_RAY_OPTIONS = frozenset(
    {"num_cpus", "num_gpus", "memory", "resources", "runtime_env", "scheduling_strategy", "accelerator_type", "label_selector"}
)


@dataclasses.dataclass(frozen=True)
class CheckpointOptions:
    """A checkpoint's options, checked once and fixed (see :func:`checkpoint` for each)."""

    retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    timeout: float | None = None
    type: str | None = None
    runtime: str = "isolated"
    cache: bool | None = None
    ray_items: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise KitaruUsageError(f"retries must be 0 or more, not {self.retries}.")
        if self.runtime not in _RUNTIMES:
            raise KitaruUsageError(f"runtime must be 'isolated' or 'inline', not {self.runtime!r}.")
        unknown = {name for name, _ in self.ray_items} - _ALLOWED_RAY_OPTIONS
        if unknown:
            raise KitaruUsageError(
                f"ray_options {sorted(unknown)} are not supported; use {sorted(_ALLOWED_RAY_OPTIONS)} "
                "(Kitaru owns retries, so max_retries and retry_exceptions are not accepted)."
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
        self.options = CheckpointOptions(
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            timeout=timeout,
            type=type,
            runtime=runtime or "isolated",
            cache=cache,
            ray_items=tuple((ray_options or {}).items()),
        )
        functools.update_wrapper(self, func)
        self.func = func
        self.name: str = func.__name__
        self.import_path = f"{func.__module__}:{func.__qualname__}"

    retries = property(lambda self: self.options.retries, doc="Attempts after the first.")
    retry_delay = property(lambda self: self.options.retry_delay, doc="Seconds before the first retry.")
    retry_backoff = property(lambda self: self.options.retry_backoff, doc="Factor applied to the delay per retry.")
    timeout = property(lambda self: self.options.timeout, doc="Seconds an attempt may run.")
    type = property(lambda self: self.options.type, doc="The call's label (llm_call, tool_call, ...).")
    runtime = property(lambda self: self.options.runtime, doc="isolated (a Ray task) or inline (in the driver).")
    cache = property(lambda self: self.options.cache, doc="Whether identical earlier calls are reused.")

    @property
    def ray_options(self) -> dict[str, Any]:
        """What is passed to Ray for each attempt (a copy)."""
        return dict(self.options.ray_items)

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
        copy: Checkpoint[Any] = Checkpoint(func)
        copy.options = self.options
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
