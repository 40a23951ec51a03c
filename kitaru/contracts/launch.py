"""The launch contract: what to run (:class:`ExecutionSpec`), where it went (:class:`Submission`),
and the :class:`Backend` protocol every compute backend implements.

Every way of starting a driver (run, resume, retry, replay, invoke; from Python, the CLI,
MCP or the UI) builds an :class:`ExecutionSpec` and hands it to the stack's backend. The
server reaches backends only through the :class:`Launcher` protocol, handed to its app by
whatever composes it, so ``kitaru_server`` never imports a backend.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = [
    "DRIVER_PREFIX_ENV",
    "Backend",
    "BackendReport",
    "BackendState",
    "ExecutionSpec",
    "LaunchAction",
    "Launcher",
    "Submission",
    "driver_arguments",
    "driver_environment",
]


DRIVER_PREFIX_ENV = "KITARU_DRIVER_ID_PREFIX"
"""A launcher's prefix for its driver's ids, in the driver's environment: it tells its own driver from a rival."""


class LaunchAction(enum.StrEnum):
    """What a driver is started for."""

    RUN = "run"
    RESUME = "resume"
    RETRY = "retry"
    REPLAY = "replay"
    INVOKE = "invoke"


@dataclasses.dataclass(frozen=True)
class ExecutionSpec:
    """Everything a backend needs to start one driver.

    Attributes:
        action: Run a new execution, continue one (resume, retry), replay one, or invoke a deployment.
        exec_id: The execution the driver drives (for a replay: the new execution's id).
        stack: The stack it runs on.
        target: ``module:qualname`` (or ``path.py:flow``) of the flow, for ``run``.
        inputs: The flow's keyword arguments, for ``run`` and ``invoke`` (JSON-ready).
        source_exec_id: The execution replayed, for ``replay``.
        replay: ``at``, ``flow_overrides``, ``checkpoint_overrides``, ``invocation_overrides``, ``skip``.
        deployment: ``{"flow": ..., "version": ...}`` of the deployed snapshot, for ``invoke``.
        server_url: The Kitaru server the driver records into (``None``: the embedded database).
        api_key: Its key; a backend passes it as a secret of the driver's environment, never in a
            place its dashboard shows.
        home: ``KITARU_HOME`` of the driver where the backend shares this machine's files.
        storage_url: The stack's storage.
        image: Container image for container backends; ``None`` elsewhere.
        environment: Further ``KITARU_*`` settings for the driver process.
        function: In-process backends only: the flow itself (a notebook's flow cannot be imported).
        args: In-process backends only: positional arguments of a ``run`` (any Python values).
        cache: The run's cache override (``None``: the flow's or the configured default).
        retries: The run's automatic retries (``None``: the flow's or the configured default).
        new_id: ``exec_id`` was generated for this spec, so no execution has it yet: the launch path
            skips the idempotency lookup that a caller's own id needs.
    """

    action: LaunchAction
    exec_id: str
    stack: str = "default"
    target: str | None = None
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source_exec_id: str | None = None
    replay: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    deployment: Mapping[str, Any] | None = None
    server_url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    home: str | None = None
    storage_url: str | None = None
    image: str | None = None
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    function: Callable[..., Any] | None = dataclasses.field(default=None, compare=False, repr=False)
    args: tuple[Any, ...] = dataclasses.field(default=(), compare=False, repr=False)
    cache: bool | None = None
    retries: int | None = None
    new_id: bool = False


@dataclasses.dataclass(frozen=True)
class Submission:
    """Where a backend put a driver: enough to ask it for status, logs and cancellation later.

    Attributes:
        backend: The backend's name (``local``, ``process``, ``ray``, ``kuberay``, ...).
        exec_id: The execution the driver drives.
        submission_id: The backend's own id (a pid, a Ray submission id, a RayJob name, a job id).
        dashboard_url: A page showing this driver's job, where there is one.
        details: Backend-specific facts (a log path, a namespace, a region).
    """

    backend: str
    exec_id: str
    submission_id: str | None = None
    dashboard_url: str | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class BackendState(enum.StrEnum):
    """The infrastructure's view of a driver; Kitaru's own records decide the execution's status."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    UNKNOWN = "unknown"

    @property
    def is_finished(self) -> bool:
        return self in (BackendState.SUCCEEDED, BackendState.FAILED, BackendState.STOPPED)


@dataclasses.dataclass(frozen=True)
class BackendReport:
    """A backend's status of one submission, with its own words when it failed (an image pull, a deadline)."""

    state: BackendState
    message: str | None = None


@runtime_checkable
class Backend(Protocol):
    """A compute backend: starts drivers and answers for them. Every implementation passes one conformance suite."""

    name: ClassVar[str]

    def submit(self, spec: ExecutionSpec) -> Submission:
        """Start a driver for ``spec``; idempotent for the same ``spec.exec_id`` and action.

        Raises:
            KitaruUsageError: the spec cannot run here (e.g. an image on a backend without containers).
            KitaruBackendError: the backend refused it or cannot be reached (the message names it).
        """
        ...

    def status(self, submission: Submission) -> BackendReport:
        """The infrastructure's status of the driver."""
        ...

    def cancel(self, submission: Submission) -> None:
        """Stop the driver and its tasks (idempotent)."""
        ...

    def logs(self, submission: Submission, *, follow: bool = False) -> Iterator[str]:
        """The driver's own output, line by line (``follow``: until it ends)."""
        ...

    def dashboard_url(self, submission: Submission) -> str | None:
        """A page showing the driver's job, where the backend has one."""
        ...


class Launcher(Protocol):
    """What the server's UI and MCP actions call to start a driver: the composition root supplies it."""

    def launch(self, spec: ExecutionSpec) -> Submission:
        """Start ``spec`` on its stack's backend; returns once the driver holds the execution."""
        ...


def driver_arguments(spec: ExecutionSpec) -> list[str]:
    """The arguments of ``python -m kitaru.runtime`` that drive ``spec`` (every backend runs this command).

    Raises:
        ValueError: the spec lacks what its action needs (a target to run, an execution to replay).
    """
    if spec.action is LaunchAction.RUN:
        if not spec.target:
            raise ValueError("a run needs a target (MODULE:FLOW or PATH.py:FLOW)")
        return ["run", spec.target, "--exec-id", spec.exec_id, "--input", json.dumps(dict(spec.inputs))]
    if spec.action is LaunchAction.INVOKE:
        if not spec.deployment:
            raise ValueError("an invoke needs a deployment")
        deployment = spec.deployment
        return [
            "invoke",
            str(deployment["flow"]),
            "--version",
            str(deployment["version"]),
            "--exec-id",
            spec.exec_id,
            "--input",
            json.dumps(dict(spec.inputs)),
        ]
    if spec.action is LaunchAction.REPLAY:
        if not spec.source_exec_id:
            raise ValueError("a replay needs the execution it replays")
        options = {key: value for key, value in spec.replay.items() if key != "at"}
        return [
            "replay",
            spec.source_exec_id,
            "--exec-id",
            spec.exec_id,
            "--at",
            str(spec.replay["at"]),
            "--spec",
            json.dumps(options),
        ]
    return [spec.action.value, spec.exec_id]


def driver_environment(spec: ExecutionSpec) -> dict[str, str]:
    """The ``KITARU_*`` environment a driver process needs for ``spec`` (added to the backend's own)."""
    env = dict(spec.environment)
    for name, value in (
        ("KITARU_SERVER_URL", spec.server_url),
        ("KITARU_API_KEY", spec.api_key),
        ("KITARU_HOME", spec.home),
        ("KITARU_STACK", spec.stack),
    ):
        if value:
            env[name] = value
    if spec.cache is not None:
        env["KITARU_CACHE"] = "1" if spec.cache else "0"
    if spec.retries is not None:
        env["KITARU_RETRIES"] = str(spec.retries)
    return env
