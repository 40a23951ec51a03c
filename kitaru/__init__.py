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

from kitaru.artifacts import current_execution_id, is_replay, load, log, progress, save
from kitaru.checkpoint import Checkpoint, CheckpointFuture, checkpoint
from kitaru.client import KitaruClient
from kitaru.config import configure, connect
from kitaru.errors import (
    FailureOrigin,
    KitaruBackendError,
    KitaruCancelledError,
    KitaruConflictError,
    KitaruContextError,
    KitaruDivergenceError,
    KitaruError,
    KitaruExecutionError,
    KitaruFeatureNotAvailableError,
    KitaruNotFoundError,
    KitaruRuntimeError,
    KitaruStateError,
    KitaruTimeoutError,
    KitaruUsageError,
    KitaruUserCodeError,
    KitaruWaitAbortedError,
    KitaruWaitValidationError,
)
from kitaru.flow import Flow, FlowHandle, flow
from kitaru.llm import llm
from kitaru.storage.serializers import register_serializer
from kitaru.waits import wait

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "CheckpointFuture",
    "FailureOrigin",
    "Flow",
    "FlowHandle",
    "KitaruBackendError",
    "KitaruCancelledError",
    "KitaruClient",
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
    "checkpoint",
    "configure",
    "connect",
    "current_execution_id",
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
