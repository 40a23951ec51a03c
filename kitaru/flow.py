"""``@flow``: the durable function whose body calls checkpoints, and the handle to its execution."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from kitaru.contracts.statuses import ExecutionStatus
from kitaru.errors import (
    FailureOrigin,
    KitaruCancelledError,
    KitaruDivergenceError,
    KitaruExecutionError,
    KitaruStateError,
    KitaruTimeoutError,
    KitaruUsageError,
    KitaruUserCodeError,
)

if TYPE_CHECKING:
    from kitaru.client import Deployment, Execution, LogEntry
    from kitaru.config import Settings
    from kitaru.contracts.launch import ExecutionSpec, Submission
    from kitaru.replay import ReplaySubmission
    from kitaru.runtime._driver import ExecutionDriver

__all__ = ["Flow", "FlowHandle", "connection", "flow", "run_spec", "start_replay", "submit"]

T = TypeVar("T")
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class Flow(Generic[T]):
    """A flow function. Start it with :meth:`run`; calling it directly is an error."""

    def __init__(
        self,
        func: Callable[..., T],
        *,
        stack: str | None = None,
        image: Any = None,
        cache: bool | None = None,
        retries: int | None = None,
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name: str = func.__name__
        self.import_path = f"{func.__module__}:{func.__qualname__}"
        self.stack = stack
        self.image = image
        self.cache = cache
        self.retries = retries

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise KitaruUsageError(
            f"flow {self.name!r} is not called directly; start it with {self.name}.run(...), which returns a FlowHandle."
        )

    def run(
        self,
        *args: Any,
        stack: str | None = None,
        image: str | None = None,
        cache: bool | None = None,
        retries: int | None = None,
        exec_id: str | None = None,
        **kwargs: Any,
    ) -> FlowHandle[T]:
        """Start an execution and return its handle at once.

        Args:
            stack: The stack to run on (default: the configured one).
            image: Container image for container backends (an error on the local and process backends,
                which run on this machine; the decorator's ``image=`` is recorded and ignored there).
            cache: Override the cache setting for every checkpoint of this run.
            retries: Automatic retries of a failed execution.
            exec_id: Idempotency key: an id that already completed returns its handle and runs nothing.
        """
        from kitaru.config import resolve_settings

        settings = resolve_settings()
        if exec_id is None and (stack or self.stack or settings.stack or "default") == "default":
            # The driver will run in this process: join Ray first, so that its first worker starts
            # while the execution is being recorded (a given exec_id may name a finished run: no Ray).
            from kitaru.runtime import ensure_ray

            ensure_ray(settings, first_worker=True)
        spec = run_spec(
            self,
            settings,
            args=args,
            inputs=kwargs,
            stack=stack or self.stack,
            image=image,
            cache=cache,
            retries=retries,
            exec_id=exec_id,
        )
        return submit(spec, settings, detach=False)

    def replay(
        self,
        exec_id: str,
        *,
        at: str,
        flow_overrides: dict[str, Any] | None = None,
        checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
        invocation_overrides: dict[str, dict[str, Any]] | None = None,
        skip: list[str] | None = None,
        wait: bool = False,
    ) -> ReplaySubmission:
        """Replay execution ``exec_id`` as a new, linked execution; calls before ``at`` reuse their outputs.

        Args:
            at: An invocation id, or a checkpoint name meaning its first invocation; it and
                everything after it run live.
            flow_overrides: Flow arguments to change (merged over the recorded ones).
            checkpoint_overrides: ``{name: override}`` for every invocation of a checkpoint.
            invocation_overrides: ``{invocation_id: override}``; wins over ``checkpoint_overrides``.
                An override is ``{"output": value}``, ``{"input": {arg: value}}``,
                ``{"model": "provider/model"}`` (llm_call only) or ``{"code": "module:function"}``
                (tool_call only).
            skip: Invocation ids in the live part to reuse anyway.
            wait: Return only once the replay is terminal.
        """
        from kitaru.config import resolve_settings

        return start_replay(
            exec_id,
            resolve_settings(),
            at=at,
            flow_overrides=flow_overrides,
            checkpoint_overrides=checkpoint_overrides,
            invocation_overrides=invocation_overrides,
            skip=skip,
            wait=wait,
        )

    def deploy(
        self,
        *,
        stack: str | None = None,
        tags: list[str] | None = None,
        image: str | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> Deployment:
        """Register the next version of this flow: a snapshot of its code in storage, its stack, image and defaults.

        Args:
            stack: Where invocations run (default: the flow's, else the active stack).
            tags: Tags to point at this version (``prod``...); a tag moves from the version it named.
            image: Container image for container backends.
            defaults: Default inputs, overridden by an invocation's.
        """
        from kitaru.client import KitaruClient

        return KitaruClient().deployments.deploy(self, stack=stack, tags=tags, image=image, defaults=defaults)

    def invoke(
        self, *, tag: str | None = None, version: int | None = None, exec_id: str | None = None, **inputs: Any
    ) -> FlowHandle[T]:
        """Run a deployed version of this flow (by ``tag`` or ``version``; default the newest) on its stack.

        The execution runs the deployed snapshot's code, not this process's, and records its version.
        """
        from kitaru.client import KitaruClient

        return KitaruClient().deployments.invoke(self.name, version=version, tag=tag, inputs=inputs, exec_id=exec_id)

    def __repr__(self) -> str:
        return f"<Flow {self.import_path}>"


class FlowHandle(Generic[T]):
    """A handle to one execution: its status, its logs, and its result once it is terminal."""

    def __init__(
        self, exec_id: str, settings: Settings, *, driver: ExecutionDriver | None = None, submission: Submission | None = None
    ) -> None:
        self.exec_id = exec_id
        self.submission = submission
        """Where the backend put this execution's driver (``None`` when nothing was started here)."""
        self._settings = settings
        self._driver = driver

    @property
    def _service(self) -> Any:
        from kitaru._service import connect_service

        return connect_service(self._settings.service_url, self._settings.api_key)

    @property
    def status(self) -> str:
        """The execution's current status (read from the server)."""
        return self._service.get_execution(self.exec_id, with_calls=False)["status"]

    @property
    def dashboard_url(self) -> str | None:
        """The Ray dashboard page of this execution's own Ray job, where there is one; ``None`` otherwise
        (a driver thread in this process shares its Ray job with everything else here)."""
        url = self._service.get_execution(self.exec_id, with_calls=False)["metadata"].get("dashboard_url")
        return url if url and "/#/jobs/" in url else None

    def _client(self) -> Any:
        from kitaru.client import KitaruClient

        return KitaruClient(service_url=self._settings.service_url, api_key=self._settings.api_key)

    def execution(self) -> Execution:
        """The full execution record (calls, attempts, artifacts)."""
        return self._client().executions.get(self.exec_id)

    def wait(self, timeout: float | None = None) -> T:
        """Block until the execution is terminal and return the flow's return value.

        Raises:
            KitaruTimeoutError: ``timeout`` seconds passed first.
            KitaruCancelledError: the execution was cancelled.
            KitaruExecutionError: the execution failed (``KitaruUserCodeError`` for user code).
        """
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        driver = self._driver
        if driver is not None and driver.thread is not None:
            driver.thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
            if not driver.thread.is_alive() and driver.result_meta is not None:
                from kitaru.storage import load_value

                return load_value(driver.storage, driver.result_meta)  # completed here (a final status): no need to ask
        delay = 0.02
        while True:
            record = self._service.get_execution(self.exec_id, with_calls=False)
            if record["status"] in TERMINAL:
                return _outcome(record)
            if deadline is not None and time.monotonic() >= deadline:
                raise KitaruTimeoutError(
                    f"execution {self.exec_id!r} is still {record['status']} after {timeout} s; wait again or check it with "
                    f"`kitaru executions get {self.exec_id}`.",
                    exec_id=self.exec_id,
                    timeout_seconds=timeout,
                    elapsed_seconds=round(time.monotonic() - started, 3),
                    last_status=_status(record["status"]),
                )
            time.sleep(delay if deadline is None else min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 1.5, 0.5)

    def get(self) -> T:
        """The result if the execution is terminal; raises :class:`KitaruStateError` otherwise."""
        record = self._service.get_execution(self.exec_id, with_calls=False)
        if record["status"] not in TERMINAL:
            raise KitaruStateError(
                f"execution {self.exec_id!r} is {record['status']}, not finished; use .wait() to block until it is.",
                exec_id=self.exec_id,
                status=record["status"],
            )
        return _outcome(record)

    def cancel(self) -> None:
        """Cancel the execution; returns once it is ``cancelled``."""
        self._client().executions.cancel(self.exec_id)

    def logs(self, *, checkpoint: str | None = None, source: str | None = None, limit: int | None = None) -> list[LogEntry]:
        """The execution's captured logs."""
        return self._client().executions.logs(self.exec_id, checkpoint=checkpoint, source=source, limit=limit)

    def _repr_html_(self) -> str:
        from kitaru._html import execution_html, ui_url

        return execution_html(self.execution(), ui_url(self._settings.service_url, self.exec_id))

    def __repr__(self) -> str:
        return f"<FlowHandle {self.exec_id}>"


def run_spec(
    flow: Flow[Any] | None,
    settings: Settings,
    *,
    target: str | None = None,
    args: tuple[Any, ...] = (),
    inputs: dict[str, Any] | None = None,
    stack: str | None = None,
    image: str | None = None,
    cache: bool | None = None,
    retries: int | None = None,
    exec_id: str | None = None,
) -> ExecutionSpec:
    """The spec of a new run of ``flow`` (or ``target``: ``module:flow``, ``path.py:flow``), recorded where ``settings`` say."""
    import uuid

    from kitaru.contracts.launch import ExecutionSpec, LaunchAction

    return ExecutionSpec(
        action=LaunchAction.RUN,
        exec_id=exec_id or str(uuid.uuid4()),
        target=target or (flow.import_path if flow is not None else None),
        function=flow,
        args=args,
        inputs=inputs or {},
        image=image,
        cache=cache,
        retries=retries,
        new_id=exec_id is None,
        **connection(settings, stack),
    )


def connection(settings: Settings, stack: str | None = None) -> dict[str, Any]:
    """The spec fields that say where a driver records (the server and key of ``settings``, or the embedded
    database) and the settings it takes from the caller (lease, cache)."""
    return {
        "stack": stack or settings.stack or "default",
        "server_url": settings.server_url,
        "api_key": settings.api_key,
        "home": settings.home,
        # a driver elsewhere does not read this process's configuration: it gets the lease and cache settings
        "environment": {"KITARU_LEASE_SECONDS": str(settings.lease_seconds), "KITARU_CACHE": "1" if settings.cache else "0"},
    }


def submit(spec: ExecutionSpec, settings: Settings, *, detach: bool) -> FlowHandle[Any]:
    """Start ``spec`` on its stack's backend (a detached process with ``detach``); its execution's handle.

    ``settings`` are the caller's: the handle reads the execution where the driver records it.
    """
    from kitaru._service import connect_service
    from kitaru.backends import launch

    submission = launch(spec, connect_service(settings.service_url, settings.api_key), detach=detach)
    driver = submission.details.get("driver") if submission is not None else None
    return FlowHandle(spec.exec_id, settings, driver=driver, submission=submission)


def start_replay(
    exec_id: str,
    settings: Settings,
    *,
    at: str,
    flow_overrides: dict[str, Any] | None = None,
    checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
    invocation_overrides: dict[str, dict[str, Any]] | None = None,
    skip: list[str] | None = None,
    wait: bool = False,
    detach: bool = False,
    new_exec_id: str | None = None,
) -> ReplaySubmission:
    """Replay ``exec_id`` as a new execution on its stack's backend (see :meth:`Flow.replay`); recorded where ``settings`` say.

    The replay's handle is also 0.21's submission (``.results[0].replay_exec_id``).
    """
    import uuid

    from kitaru._service import connect_service
    from kitaru.contracts.launch import ExecutionSpec, LaunchAction

    original = connect_service(settings.service_url, settings.api_key).get_execution(exec_id, with_calls=False)
    options = {
        "at": at,
        "flow_overrides": flow_overrides,
        "checkpoint_overrides": checkpoint_overrides,
        "invocation_overrides": invocation_overrides,
        "skip": skip,
    }
    spec = ExecutionSpec(
        action=LaunchAction.REPLAY,
        exec_id=new_exec_id or str(uuid.uuid4()),
        source_exec_id=exec_id,
        replay={key: value for key, value in options.items() if value is not None or key == "at"},
        **connection(settings, original.get("stack")),
    )
    from kitaru.replay import ReplaySubmission

    handle = ReplaySubmission(submit(spec, settings, detach=detach), original_exec_id=exec_id)
    if wait:
        try:
            handle.wait()
        except (KitaruStateError, KitaruCancelledError):
            raise
        except Exception:  # noqa: BLE001 - a failed replay is still a terminal replay; its handle says how
            pass
    return handle


def _outcome(record: dict[str, Any]) -> Any:
    """The flow's result for a terminal record, or the error it ended with."""
    exec_id = record["exec_id"]
    if record["status"] == "completed":
        from kitaru.storage import load_value, open_storage

        settings = record["settings"]
        return load_value(open_storage(settings["storage_url"], settings["storage_options"]), record["result"])
    if record["status"] == "cancelled":
        raise KitaruCancelledError(
            f"execution {exec_id!r} was cancelled; resume it with `kitaru executions resume {exec_id}`.", exec_id=exec_id
        )
    raise execution_error(exec_id, record.get("failure") or {})


def execution_error(exec_id: str, failure: dict[str, Any]) -> KitaruExecutionError:
    """The error a failed execution raises to whoever waits for it."""
    origin = failure.get("origin", FailureOrigin.UNKNOWN.value)
    cls = {FailureOrigin.USER_CODE.value: KitaruUserCodeError, FailureOrigin.DIVERGENCE.value: KitaruDivergenceError}.get(
        origin, KitaruExecutionError
    )
    where = f" in checkpoint {failure['invocation_id']!r}" if failure.get("invocation_id") else ""
    if origin == FailureOrigin.DIVERGENCE.value:
        advice = "replay from an earlier call (at=) or run the flow afresh"
    else:
        advice = f"fix the cause and retry it (`kitaru executions retry {exec_id}`); the traceback is on this error's .traceback"
    message = str(failure.get("message") or "").rstrip(". ")
    return cls(
        f"execution {exec_id!r} failed{where}: {failure.get('type')}: {message}. {advice[0].upper()}{advice[1:]}.",
        exec_id=exec_id,
        status=ExecutionStatus.FAILED,
        invocation_id=failure.get("invocation_id"),
        original_type=failure.get("type"),
        original_message=failure.get("message"),
        traceback=failure.get("traceback"),
        origin=FailureOrigin(origin) if origin in FailureOrigin._value2member_map_ else FailureOrigin.UNKNOWN,
    )


def _status(value: str) -> ExecutionStatus | str:
    try:
        return ExecutionStatus(value)
    except ValueError:
        return value


@overload
def flow(func: Callable[..., T]) -> Flow[T]: ...
@overload
def flow(
    func: None = None,
    *,
    stack: str | None = None,
    image: Any = None,
    cache: bool | None = None,
    retries: int | None = None,
) -> Callable[[Callable[..., T]], Flow[T]]: ...


def flow(func: Callable[..., T] | None = None, **options: Any) -> Any:
    """Declare a flow: plain Python whose checkpoint calls are durable.

    Args:
        stack: Default stack for its runs.
        image: Default image (:class:`~kitaru.ImageSettings`, its dict, or an image name): recorded on
            its executions; the local and process backends ignore it.
        cache: Default cache setting for its checkpoints.
        retries: Automatic retries of a failed execution.
    """
    if func is not None:
        return Flow(func, **options)
    return lambda f: Flow(f, **options)
