"""Kitaru: durable execution for AI agents, on Ray.

A flow is plain Python made of checkpoints; every checkpoint's output is
persisted, so a flow that crashes or is resumed never repeats finished work::

    from kitaru import flow, checkpoint

    @checkpoint
    def fetch(url: str) -> str: ...

    @flow
    def research(url: str) -> str:
        return fetch(url)

    print(research.run("https://example.com").wait())

Importing this package starts nothing and imports neither Ray nor the server.
"""

from typing import Any

from kitaru import events
from kitaru.artifacts import current_execution_id, is_replay, load, log, progress, save
from kitaru.checkpoint import Checkpoint, CheckpointFuture, checkpoint
from kitaru.client import ExecutionEvent, ExecutionStatistics, ExecutionStatisticsGroup, KitaruClient
from kitaru.config import configure, connect
from kitaru.contracts.statuses import CallStatus, ExecutionStatus, WaitStatus
from kitaru.diff import ExecutionDiff, diff
from kitaru.errors import (
    FailureOrigin,
    KitaruAmbiguousFlowResultError,
    KitaruBackendError,
    KitaruCancelledError,
    KitaruConflictError,
    KitaruContextError,
    KitaruDivergenceError,
    KitaruError,
    KitaruExecutionError,
    KitaruFeatureNotAvailableError,
    KitaruLogRetrievalError,
    KitaruNotFoundError,
    KitaruRuntimeError,
    KitaruStackIntegrationDependencyError,
    KitaruStateError,
    KitaruTimeoutError,
    KitaruUsageError,
    KitaruUserCodeError,
    KitaruWaitAbortedError,
    KitaruWaitValidationError,
)
from kitaru.flow import Flow, FlowHandle, flow
from kitaru.images import ImageSettings
from kitaru.llm import llm
from kitaru.replay import ReplaySubmission
from kitaru.storage.serializers import register_serializer
from kitaru.waits import wait

__version__ = "0.1.0"

__all__ = [
    "CallStatus",
    "Checkpoint",
    "CheckpointFuture",
    "ExecutionDiff",
    "ExecutionEvent",
    "ExecutionStatistics",
    "ExecutionStatisticsGroup",
    "ExecutionStatus",
    "FailureOrigin",
    "Flow",
    "FlowHandle",
    "ImageSettings",
    "KitaruAmbiguousFlowResultError",
    "KitaruBackendError",
    "KitaruCancelledError",
    "KitaruClient",
    "KitaruConflictError",
    "KitaruContextError",
    "KitaruDivergenceError",
    "KitaruError",
    "KitaruExecutionError",
    "KitaruFeatureNotAvailableError",
    "KitaruLogRetrievalError",
    "KitaruNotFoundError",
    "KitaruRuntimeError",
    "KitaruStackIntegrationDependencyError",
    "KitaruStateError",
    "KitaruTimeoutError",
    "KitaruUsageError",
    "KitaruUserCodeError",
    "KitaruWaitAbortedError",
    "KitaruWaitValidationError",
    "ReplaySubmission",
    "WaitStatus",
    "checkpoint",
    "configure",
    "connect",
    "current_execution_id",
    "diff",
    "events",
    "flow",
    "is_replay",
    "llm",
    "load",
    "log",
    "progress",
    "register_serializer",
    "save",
    "wait",
]


def __getattr__(name: str) -> Any:
    """Kitaru 0.21 names this version replaced raise an error naming the replacement."""
    from kitaru._compat import REPLACED, unsupported

    if name in REPLACED:
        raise unsupported("kitaru", name)
    raise AttributeError(f"module 'kitaru' has no attribute {name!r}")
