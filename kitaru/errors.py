"""Kitaru's error hierarchy.

Every error has one root, carries its fields, says what to do next, and
round-trips through pickle (Ray pickles exceptions between processes)::

    KitaruError
    ├── KitaruUsageError
    │   └── KitaruWaitValidationError
    ├── KitaruContextError
    ├── KitaruStateError
    │   ├── KitaruTimeoutError
    │   ├── KitaruCancelledError
    │   ├── KitaruConflictError
    │   ├── KitaruWaitAbortedError
    │   └── KitaruNotFoundError
    ├── KitaruRuntimeError
    │   ├── KitaruExecutionError
    │   │   ├── KitaruUserCodeError
    │   │   └── KitaruDivergenceError
    │   └── KitaruBackendError
    └── KitaruFeatureNotAvailableError
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "FailureOrigin",
    "KitaruBackendError",
    "KitaruCancelledError",
    "KitaruConflictError",
    "KitaruContextError",
    "KitaruDivergenceError",
    "KitaruError",
    "KitaruExecutionError",
    "KitaruFeatureNotAvailableError",
    "KitaruNotFoundError",
    "KitaruRuntimeError",
    "KitaruStateError",
    "KitaruTimeoutError",
    "KitaruUsageError",
    "KitaruUserCodeError",
    "KitaruWaitAbortedError",
    "KitaruWaitValidationError",
]


class FailureOrigin(enum.StrEnum):
    """Where an execution failure came from."""

    USER_CODE = "user_code"
    RUNTIME = "runtime"
    BACKEND = "backend"
    DIVERGENCE = "divergence"
    UNKNOWN = "unknown"


class KitaruError(Exception):
    """Root of every error Kitaru raises.

    Keyword fields given at construction become attributes and survive pickling.
    """

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.message, self.fields))

    def __str__(self) -> str:
        return self.message


def _rebuild_error(cls: type[KitaruError], message: str, fields: dict[str, Any]) -> KitaruError:
    return cls(message, **fields)


class KitaruUsageError(KitaruError):
    """The API was called wrongly (bad arguments, bad input)."""


class KitaruWaitValidationError(KitaruUsageError):
    """Input given to a wait does not match the wait's schema."""


class KitaruContextError(KitaruError):
    """A checkpoint, ``wait`` or ``save`` was called where it may not be."""


class KitaruStateError(KitaruError):
    """The execution (or object) is not in a state that allows the operation."""


class KitaruTimeoutError(KitaruStateError):
    """A wait for a result, an input or a checkpoint attempt ran out of time."""


class KitaruCancelledError(KitaruStateError):
    """The execution was cancelled."""


class KitaruConflictError(KitaruStateError):
    """A concurrent operation won the race (HTTP 409)."""


class KitaruWaitAbortedError(KitaruStateError):
    """The wait was aborted by a client."""


class KitaruNotFoundError(KitaruStateError):
    """An execution, wait, artifact or stack does not exist (HTTP 404)."""


class KitaruRuntimeError(KitaruError):
    """Something failed while running an execution."""


class KitaruExecutionError(KitaruRuntimeError):
    """An execution failed.

    Fields: ``exec_id``, ``invocation_id`` (the checkpoint, if any),
    ``original_type``, ``original_message``, ``traceback`` and ``origin``.
    """


class KitaruUserCodeError(KitaruExecutionError):
    """User code (the flow body or a checkpoint) raised."""


class KitaruDivergenceError(KitaruExecutionError):
    """A replayed flow called a different sequence of checkpoints."""


class KitaruBackendError(KitaruRuntimeError):
    """The compute backend, storage or server failed."""


class KitaruFeatureNotAvailableError(KitaruError):
    """The feature needs an optional extra or a backend that is not available."""
