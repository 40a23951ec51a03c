"""The future of a checkpoint call: resolves the committed value (from Ray, or from storage) or
raises the call's error as the flow body should see it.

The runtime creates these; ``kitaru.checkpoint`` re-exports :class:`CheckpointFuture`.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from kitaru.errors import FailureOrigin, KitaruCancelledError, KitaruExecutionError, KitaruRuntimeError, KitaruTimeoutError

__all__ = ["MISSING", "CheckpointFuture", "value_of"]

MISSING: Any = object()
"""A call result whose value was not loaded yet (``None`` is a value)."""


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
        return value_of(outcome)

    load = result

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<CheckpointFuture {self.invocation_id} {state}>"


def value_of(outcome: Any) -> Any:
    """The value of a settled call: kept, fetched from Ray, or loaded from the flow's storage (then kept)."""
    if outcome.value is not MISSING:
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
        raise KitaruRuntimeError(f"the value of {outcome.invocation_id!r} can only be loaded inside its flow.")
    outcome.value = load_value(storage, outcome.output)
    return outcome.value


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
