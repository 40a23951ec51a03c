"""Where code is running: a flow body (driver side) or a checkpoint attempt (worker side)."""

from __future__ import annotations

import contextvars
import dataclasses
from typing import TYPE_CHECKING, Any

from kitaru.errors import KitaruContextError

if TYPE_CHECKING:
    from kitaru.runtime._driver import ExecutionDriver
    from kitaru.storage import Storage

current_driver: contextvars.ContextVar[ExecutionDriver | None] = contextvars.ContextVar("kitaru_driver", default=None)
current_attempt: contextvars.ContextVar[AttemptContext | None] = contextvars.ContextVar("kitaru_attempt", default=None)


@dataclasses.dataclass
class AttemptContext:
    """State of one checkpoint attempt, collected while the user's function runs."""

    exec_id: str
    invocation_id: str
    attempt: int
    storage: Storage
    service_url: str
    is_replay: bool = False
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # the run's worker settings (never this process's env)


def require_flow_body(what: str) -> ExecutionDriver:
    """The running flow's driver, or a :class:`KitaruContextError` saying where ``what`` may be called."""
    if current_attempt.get() is not None:
        raise KitaruContextError(
            f"{what} was called inside a checkpoint; call it from the flow body (the @flow function) instead, "
            "or turn the inner function into a plain function."
        )
    driver = current_driver.get()
    if driver is None:
        raise KitaruContextError(
            f"{what} was called outside a flow; call it from the body of a @flow function started with .run()."
        )
    return driver


def require_checkpoint(what: str) -> AttemptContext:
    """The running checkpoint attempt, or a :class:`KitaruContextError`."""
    attempt = current_attempt.get()
    if attempt is None:
        raise KitaruContextError(f"{what} must be called inside a @checkpoint function (it records on that checkpoint).")
    return attempt
