"""Statuses of executions, checkpoint calls and waits, with their named sets defined once."""

from __future__ import annotations

import enum

__all__ = ["CallStatus", "ExecutionStatus", "WaitStatus"]


class ExecutionStatus(enum.StrEnum):
    """An execution's status. ``interrupted`` is derived when a record is read: ``running`` with a lapsed lease."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    INTERRUPTED = "interrupted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """Whether the execution is terminal (completed, failed or cancelled)."""
        return self in TERMINAL_EXECUTION_STATUSES

    @property
    def is_successful(self) -> bool:
        """Whether the execution completed."""
        return self is ExecutionStatus.COMPLETED

    @property
    def is_resumable(self) -> bool:
        """Whether ``resume`` continues an execution in this status (``failed`` ones are retried instead)."""
        return self in RESUMABLE_EXECUTION_STATUSES


class CallStatus(enum.StrEnum):
    """A checkpoint call's status."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    CACHED = "cached"
    REPLAYED = "replayed"
    OVERRIDDEN = "overridden"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """Whether the call has ended, one way or another."""
        return self not in (CallStatus.PENDING, CallStatus.RUNNING)

    @property
    def is_done(self) -> bool:
        """Whether the call has a committed output (so resume and retry reuse it)."""
        return self in DONE_CALL_STATUSES


class WaitStatus(enum.StrEnum):
    """A wait's status."""

    PENDING = "pending"
    ANSWERED = "answered"
    ABORTED = "aborted"

    @property
    def is_finished(self) -> bool:
        """Whether the wait was settled (answered or aborted)."""
        return self is not WaitStatus.PENDING


TERMINAL_EXECUTION_STATUSES = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})
RESUMABLE_EXECUTION_STATUSES = frozenset({ExecutionStatus.INTERRUPTED, ExecutionStatus.WAITING, ExecutionStatus.CANCELLED})
LIVE_EXECUTION_STATUSES = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING})
DONE_CALL_STATUSES = frozenset({CallStatus.COMPLETED, CallStatus.CACHED, CallStatus.REPLAYED, CallStatus.OVERRIDDEN})
