"""Kitaru's error hierarchy.

Every error has one root, carries its fields, says what to do next, and
round-trips through pickle (Ray pickles exceptions between processes)::

    KitaruError
    ├── KitaruUsageError (also a ValueError)
    │   ├── KitaruWaitValidationError
    │   ├── KitaruStackIntegrationDependencyError
    │   ├── KitaruStackNotRemoteExecutableUsageError
    │   └── KitaruDeploymentInputValuesError
    ├── KitaruContextError (also a RuntimeError)
    ├── KitaruStateError (also a RuntimeError)
    │   ├── KitaruTimeoutError (also a TimeoutError)
    │   ├── KitaruCancelledError
    │   ├── KitaruConflictError
    │   ├── KitaruWaitAbortedError
    │   ├── KitaruNotFoundError
    │   └── KitaruStackNotRemoteExecutableStateError
    ├── KitaruRuntimeError (also a RuntimeError)
    │   ├── KitaruExecutionError
    │   │   ├── KitaruUserCodeError
    │   │   └── KitaruDivergenceError
    │   ├── KitaruAmbiguousFlowResultError (0.21's; never raised: a flow's result is its return value)
    │   └── KitaruBackendError
    │       └── KitaruLogRetrievalError
    └── KitaruFeatureNotAvailableError (also a NotImplementedError)

The builtin bases and the extra classes are Kitaru 0.21's, so its users' ``except``
clauses keep working.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "FailureOrigin",
    "KitaruAmbiguousFlowResultError",
    "KitaruDeploymentInputValuesError",
    "KitaruLogRetrievalError",
    "KitaruStackIntegrationDependencyError",
    "KitaruStackNotRemoteExecutableStateError",
    "KitaruStackNotRemoteExecutableUsageError",
    "StackNotRemoteExecutable",
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


class KitaruUsageError(KitaruError, ValueError):
    """The API was called wrongly (bad arguments, bad input)."""


class KitaruWaitValidationError(KitaruUsageError):
    """Input given to a wait does not match the wait's schema."""


class KitaruContextError(KitaruError, RuntimeError):
    """A checkpoint, ``wait`` or ``save`` was called where it may not be."""


class KitaruStateError(KitaruError, RuntimeError):
    """The execution (or object) is not in a state that allows the operation."""


class KitaruTimeoutError(KitaruStateError, TimeoutError):
    """A wait for a result, an input or a checkpoint attempt ran out of time.

    Fields (from ``FlowHandle.wait``): ``exec_id``, ``timeout_seconds``, ``elapsed_seconds``
    and ``last_status`` (an :class:`~kitaru.ExecutionStatus`); the execution is unchanged.
    """

    exec_id: str | None = None
    timeout_seconds: float | None = None
    elapsed_seconds: float | None = None
    last_status: Any = None


class KitaruCancelledError(KitaruStateError):
    """The execution was cancelled."""


class KitaruConflictError(KitaruStateError):
    """A concurrent operation won the race (HTTP 409)."""


class KitaruWaitAbortedError(KitaruStateError):
    """The wait was aborted by a client."""


class KitaruNotFoundError(KitaruStateError):
    """An execution, wait, artifact or stack does not exist (HTTP 404)."""


class KitaruRuntimeError(KitaruError, RuntimeError):
    """Something failed while running an execution."""


class KitaruExecutionError(KitaruRuntimeError):
    """An execution failed.

    Fields: ``exec_id``, ``status`` (an :class:`~kitaru.ExecutionStatus`), ``invocation_id``
    (the checkpoint, if any), ``original_type``, ``original_message``, ``traceback`` and
    ``origin`` (a :class:`FailureOrigin`; ``failure_origin`` is 0.21's name for it).
    """

    exec_id: str | None = None
    status: Any = None
    invocation_id: str | None = None
    original_type: str | None = None
    original_message: str | None = None
    traceback: str | None = None
    origin: FailureOrigin | None = None

    def __init__(self, message: str = "", **fields: Any) -> None:
        if "failure_origin" in fields:  # 0.21's keyword
            fields["origin"] = fields.pop("failure_origin")
        super().__init__(message, **fields)

    @property
    def failure_origin(self) -> FailureOrigin | None:
        """Where the failure came from (0.21's name for ``origin``)."""
        return self.origin


class KitaruUserCodeError(KitaruExecutionError):
    """User code (the flow body or a checkpoint) raised."""


class KitaruDivergenceError(KitaruExecutionError):
    """A replayed flow called a different sequence of checkpoints."""


class KitaruBackendError(KitaruRuntimeError):
    """The compute backend, storage or server failed."""


class KitaruLogRetrievalError(KitaruBackendError):
    """Logs could not be read from the server or storage."""


class KitaruAmbiguousFlowResultError(KitaruRuntimeError):
    """0.21 raised it when it could not guess a flow's result; a result here is the flow's own return value."""


class KitaruStackIntegrationDependencyError(KitaruUsageError):
    """The stack needs an optional extra that is not installed (the message names it)."""


class StackNotRemoteExecutable:
    """Marks errors caused by a stack that cannot run executions remotely."""


class KitaruStackNotRemoteExecutableUsageError(StackNotRemoteExecutable, KitaruUsageError):
    """A remote operation was asked of a stack that runs locally only."""


class KitaruStackNotRemoteExecutableStateError(StackNotRemoteExecutable, KitaruStateError):
    """A stored target's stack runs locally only."""


class KitaruDeploymentInputValuesError(KitaruUsageError):
    """A deployment needs concrete input values."""


class KitaruFeatureNotAvailableError(KitaruError, NotImplementedError):
    """The feature needs an optional extra or a backend that is not available."""
