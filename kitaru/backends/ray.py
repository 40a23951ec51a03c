"""The ``ray`` backend: drivers as jobs on an existing Ray cluster, through the Ray Jobs API.

A stack names the cluster's dashboard address and, optionally, a ``runtime_env``::

    kitaru stack create prod --backend ray --backend-option address=http://HEAD:8265 \\
        --backend-option runtime_env='{"pip": ["httpx"]}'

Each driver is a job whose entrypoint is ``python -m kitaru.runtime ...`` (the arguments
of :func:`~kitaru.contracts.launch.driver_arguments`), with a ``runtime_env`` carrying the
project's directory (``working_dir``, uploaded by Ray) and the stack's requirements. The
job's submission id is derived from the execution id, so submitting the same spec twice
returns the job already running. The driver's ``KITARU_*`` settings travel as the
runtime_env's variables, except the API key: the dashboard shows a job's runtime_env, so
the key goes in the entrypoint's own environment (or, with ``api_key_env``, is read from a
variable the cluster's nodes already hold). Ray token auth (``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) is sent as a request header.

Kitaru's own records decide an execution's status; the job's status is only a signal
(a job that ended while its execution still says ``running`` has lost its driver).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import os
import shlex
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from kitaru.backends._options import BackendOption
from kitaru.backends.remote import submission_environment
from kitaru.contracts.launch import (
    BackendReport,
    BackendState,
    ExecutionSpec,
    LaunchAction,
    Submission,
    driver_arguments,
    driver_environment,
)
from kitaru.errors import KitaruBackendError, KitaruUsageError

__all__ = ["OPTIONS", "RayBackend", "RayOptions", "auth_token", "check_options"]

CONNECT_TIMEOUT_SECONDS = 4.0  # an unreachable address must fail within 5 s
_RUNTIME_ENV_KEYS = frozenset(
    {
        "working_dir",
        "py_modules",
        "py_executable",
        "pip",
        "uv",
        "conda",
        "env_vars",
        "excludes",
        "container",
        "image_uri",
        "config",
        "java_jars",
        "nsight",
        "mpi",
        "worker_process_setup_hook",
    }
)
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
_STATES = {
    "PENDING": BackendState.PENDING,
    "RUNNING": BackendState.RUNNING,
    "SUCCEEDED": BackendState.SUCCEEDED,
    "FAILED": BackendState.FAILED,
    "STOPPED": BackendState.STOPPED,
}
_MAX_RESUBMISSIONS = 100

# what `kitaru stack create --help` lists; :class:`RayOptions` checks and normalises them (check_options)
OPTIONS = (
    BackendOption("address", "str", "The cluster's dashboard (Jobs API) address, http://HOST:8265.", required=True),
    BackendOption("runtime_env", "dict", "A Ray runtime_env (JSON) for the driver and its tasks; no secrets."),
    BackendOption(
        "working_dir", "str", "Directory uploaded as the job's working directory (default: the current one; false: none)."
    ),
    BackendOption("requirements", "str", "A requirements file added to the runtime_env's pip."),
    BackendOption("python", "str", "The entrypoint's interpreter on the cluster.", default="python"),
    BackendOption("entrypoint_num_cpus", "str", "CPUs reserved for the driver (default: none, it runs on the head)."),
    BackendOption("entrypoint_resources", "dict", 'Custom resources reserved for the driver, e.g. {"gpu_node": 1}.'),
    BackendOption("api_key_env", "str", "Read the API key from this variable of the cluster's environment."),
    BackendOption("auto_resume", "bool", "`kitaru executions resume --all` re-submits interrupted executions.", default=False),
)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A ``ray`` stack's options, checked and normalised (``runtime_env`` parsed into an object).

    Raises:
        KitaruUsageError: naming the option that is wrong.
    """
    return RayOptions(options).to_dict()


class RayOptions:
    """A ``ray`` stack's backend options, checked when the stack is created.

    Attributes:
        address: The cluster's dashboard (Jobs API) address, ``http://HOST:8265``.
        runtime_env: A Ray runtime_env for the driver and its tasks (no secrets: the dashboard shows it).
        working_dir: The directory uploaded as the job's working directory (default: the submitting
            process's current directory); ``False`` uploads nothing (the cluster's image has the code).
        requirements: A requirements file whose lines are added to the runtime_env's ``pip``.
        python: The interpreter of the entrypoint on the cluster (default ``python``).
        entrypoint_num_cpus: CPUs reserved for the driver (default: none, so it runs on the head).
        entrypoint_resources: Custom resources reserved for the driver.
        api_key_env: Read the API key from this variable of the cluster's environment instead of
            sending it with each job.
        auto_resume: ``kitaru executions resume --all`` (and the server) re-submit this stack's
            interrupted executions.
    """

    KEYS: ClassVar[tuple[str, ...]] = (
        "address",
        "runtime_env",
        "working_dir",
        "requirements",
        "python",
        "entrypoint_num_cpus",
        "entrypoint_resources",
        "api_key_env",
        "auto_resume",
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.KEYS))
        if unknown:
            raise KitaruUsageError(f"unknown option(s) {unknown} for the ray backend; its options are: {', '.join(self.KEYS)}.")
        self.address = _check_address(options.get("address"))
        self.runtime_env = _check_runtime_env(options.get("runtime_env"))
        self.working_dir = options.get("working_dir", True)
        if not isinstance(self.working_dir, bool | str):
            raise KitaruUsageError("the ray backend's working_dir option is a directory path, or false to upload none.")
        if isinstance(self.working_dir, str) and self.working_dir.lower() in ("false", "none", ""):
            self.working_dir = False
        self.requirements = options.get("requirements")
        self.python = str(options.get("python") or "python")
        self.entrypoint_num_cpus = _check_number(options.get("entrypoint_num_cpus"), "entrypoint_num_cpus")
        self.entrypoint_resources = options.get("entrypoint_resources")
        if self.entrypoint_resources is not None and not _is_resource_map(self.entrypoint_resources):
            raise KitaruUsageError('the ray backend\'s entrypoint_resources option is a JSON object such as {"gpu_node": 1}.')
        self.api_key_env = options.get("api_key_env")
        if self.api_key_env is not None and not str(self.api_key_env).isidentifier():
            raise KitaruUsageError(f"api_key_env {self.api_key_env!r} is not an environment variable name.")
        self.auto_resume = _check_bool(options.get("auto_resume", False), "auto_resume")

    def to_dict(self) -> dict[str, Any]:
        """The options as stored on the stack (``runtime_env`` parsed into an object)."""
        stored = {key: getattr(self, key) for key in self.KEYS}
        return {key: value for key, value in stored.items() if value is not None}


class RayBackend:
    """Drivers as Ray jobs on an existing cluster (``JobSubmissionClient``)."""

    name: ClassVar[str] = "ray"

    def __init__(
        self, options: Mapping[str, Any] | RayOptions | None = None, *, container_registry: str | None = None, **more: Any
    ) -> None:
        """``options`` (or keyword arguments) are the stack's backend options; a registry is not used (no images)."""
        if isinstance(options, RayOptions):
            self.options = options
        else:
            self.options = RayOptions({**(options or {}), **more})
        self._client: Any = None

    def submit(self, spec: ExecutionSpec) -> Submission:
        """Submit a job driving ``spec``; the same spec again returns the job already there.

        Raises:
            KitaruUsageError: the spec cannot run on this stack (an image: the ray backend runs in the cluster's own).
            KitaruBackendError: the cluster cannot be reached, refused the token, or refused the job.
        """
        if spec.image:
            raise KitaruUsageError(
                f"the ray backend runs drivers in the cluster's own environment and cannot use image {spec.image!r}; "
                "drop image= or use a container backend (kuberay, vertex, sagemaker)."
            )
        spec = _named_inputs(spec)
        arguments = driver_arguments(spec)
        client = self._connect()
        base = f"kitaru-{spec.action.value}-{spec.exec_id}"
        for number in range(1, _MAX_RESUBMISSIONS + 1):
            submission_id = base if number == 1 else f"{base}-{number}"
            existing = _job_info(client, submission_id)
            if existing is None:
                return self._submit_new(client, spec, arguments, submission_id)
            status = str(existing.status)
            if not _STATES.get(status, BackendState.UNKNOWN).is_finished or spec.action in _ONCE:
                return self._submission(spec, submission_id)
        raise KitaruBackendError(
            f"execution {spec.exec_id!r} was submitted {_MAX_RESUBMISSIONS} times; check the cluster's jobs."
        )

    def status(self, submission: Submission) -> BackendReport:
        """The job's status (``STOPPED`` when the cluster no longer knows the job, e.g. after a restart)."""
        try:
            info = _job_info(self._connect(), str(submission.submission_id))
        except KitaruBackendError as exc:
            return BackendReport(BackendState.UNKNOWN, str(exc))
        if info is None:
            return BackendReport(
                BackendState.STOPPED, f"the Ray cluster at {self.options.address} has no job {submission.submission_id!r}"
            )
        return BackendReport(_STATES.get(str(info.status), BackendState.UNKNOWN), info.message or None)

    def cancel(self, submission: Submission) -> None:
        """Stop the job (Ray stops its driver and the driver's tasks); a finished or unknown job is left alone."""
        client = self._connect()
        info = _job_info(client, str(submission.submission_id))
        if info is None or _STATES.get(str(info.status), BackendState.UNKNOWN).is_finished:
            return
        try:
            client.stop_job(submission.submission_id)
        except RuntimeError as exc:
            raise KitaruBackendError(
                f"the Ray cluster at {self.options.address} did not stop job {submission.submission_id!r}: {exc}"
            ) from None

    def logs(self, submission: Submission, *, follow: bool = False) -> Iterator[str]:
        """The job's driver log, line by line; ``follow`` streams it until the job ends."""
        client = self._connect()
        if not follow:
            try:
                text = client.get_job_logs(submission.submission_id)
            except RuntimeError:
                return
            yield from text.splitlines()
            return
        yield from _follow(client, str(submission.submission_id))

    def dashboard_url(self, submission: Submission) -> str | None:
        """The job's page in the Ray dashboard."""
        return f"{self.options.address}/#/jobs/{submission.submission_id}" if submission.submission_id else None

    def _submission(self, spec: ExecutionSpec, submission_id: str) -> Submission:
        return Submission(
            backend=self.name,
            exec_id=spec.exec_id,
            submission_id=submission_id,
            dashboard_url=f"{self.options.address}/#/jobs/{submission_id}",
            details={"address": self.options.address},
        )

    def _submit_new(self, client: Any, spec: ExecutionSpec, arguments: list[str], submission_id: str) -> Submission:
        entrypoint = self._entrypoint(spec, arguments)
        runtime_env = self.runtime_env(spec, submission_id)
        extra: dict[str, Any] = {}
        if self.options.entrypoint_num_cpus is not None:
            extra["entrypoint_num_cpus"] = self.options.entrypoint_num_cpus
        if self.options.entrypoint_resources:
            extra["entrypoint_resources"] = dict(self.options.entrypoint_resources)
        try:
            client.submit_job(
                entrypoint=entrypoint,
                runtime_env=runtime_env,
                submission_id=submission_id,
                metadata={"kitaru_exec_id": spec.exec_id, "kitaru_action": spec.action.value, "kitaru_stack": spec.stack},
                **extra,
            )
        except RuntimeError as exc:
            if "already exists" in str(exc):  # a concurrent submission of the same spec won
                return self._submission(spec, submission_id)
            raise KitaruBackendError(f"the Ray cluster at {self.options.address} refused the job: {_first_line(exc)}") from None
        except (OSError, ValueError, TypeError) as exc:
            raise KitaruBackendError(
                f"submitting to the Ray cluster at {self.options.address} failed: {_first_line(exc)}"
            ) from None
        return self._submission(spec, submission_id)

    def _entrypoint(self, spec: ExecutionSpec, arguments: list[str]) -> str:
        command = shlex.join([self.options.python, "-m", "kitaru.runtime", *arguments])
        if self.options.api_key_env:
            return f'KITARU_API_KEY="${{{self.options.api_key_env}}}" {command}'
        if spec.api_key:
            return f"KITARU_API_KEY={shlex.quote(spec.api_key)} {command}"
        return command

    def runtime_env(self, spec: ExecutionSpec, submission_id: str) -> dict[str, Any]:
        """The job's runtime_env: the stack's, plus the working directory, the requirements and the driver's settings."""
        env = json.loads(json.dumps(self.options.runtime_env or {}))
        if self.options.working_dir and "working_dir" not in env:
            directory = Path(os.getcwd() if self.options.working_dir is True else str(self.options.working_dir)).expanduser()
            if not directory.is_dir():
                raise KitaruUsageError(f"the ray stack's working_dir {str(directory)!r} is not a directory.")
            env["working_dir"] = str(directory.resolve())
        if self.options.requirements:
            env["pip"] = [*_pip_list(env.get("pip")), *_requirements(Path(str(self.options.requirements)))]
        variables = {
            name: value
            for name, value in driver_environment(spec).items()
            if name != "KITARU_API_KEY" and not (name.startswith("KITARU_") and _looks_secret(name))
        }
        variables.setdefault("KITARU_RAY_ADDRESS", "auto")  # join the job's cluster, never a private Ray
        variables.update(submission_environment(self._submission(spec, submission_id)))  # recorded by the driver
        env["env_vars"] = {**env.get("env_vars", {}), **variables}
        return env

    def _connect(self) -> Any:
        """A Jobs API client, after checking within seconds that the address answers and accepts the token."""
        if self._client is not None:
            return self._client
        headers = auth_headers()
        _preflight(self.options.address, headers)
        from ray.job_submission import JobSubmissionClient

        try:
            self._client = JobSubmissionClient(self.options.address, headers=headers)
        except (ConnectionError, RuntimeError, OSError) as exc:
            raise KitaruBackendError(f"cannot reach the Ray Jobs API at {self.options.address}: {_first_line(exc)}") from None
        return self._client


_ONCE = (LaunchAction.RUN, LaunchAction.REPLAY, LaunchAction.INVOKE)


def auth_token() -> tuple[str | None, str]:
    """Ray's auth token and where it came from: ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    for path, source in (
        (os.environ.get("RAY_AUTH_TOKEN_PATH"), "RAY_AUTH_TOKEN_PATH"),
        (str(Path.home() / ".ray" / "auth_token"), "~/.ray/auth_token"),
    ):
        if path and Path(path).expanduser().is_file():
            token = Path(path).expanduser().read_text().strip()
            if token:
                return token, f"{source} ({path})" if source == "RAY_AUTH_TOKEN_PATH" else source
    return None, "none"


def auth_headers() -> dict[str, str]:
    """The ``Authorization`` header carrying Ray's auth token, when there is one."""
    token, _ = auth_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _preflight(address: str, headers: Mapping[str, str]) -> None:
    """Fail within seconds, naming the address, when nothing answers there or the token is refused.

    It asks for a job that does not exist: a 404 proves both that the Jobs API answers and that it
    accepted the token (``/api/version`` answers without one).
    """
    request = urllib.request.Request(f"{address}/api/jobs/kitaru-preflight-check", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return
        if exc.code in (401, 403):
            _, source = auth_token()
            hint = f"the token from {source} was refused" if headers else "no token was sent"
            raise KitaruBackendError(
                f"the Ray cluster at {address} requires token auth and {hint}; "
                "set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token."
            ) from None
        raise KitaruBackendError(f"the Ray Jobs API at {address} answered HTTP {exc.code}; check the stack's address.") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KitaruBackendError(
            f"cannot reach the Ray Jobs API at {address} ({reason}); check that the cluster is up and the stack's address "
            "(its dashboard, usually port 8265)."
        ) from None


def _job_info(client: Any, submission_id: str) -> Any:
    """The job's info, or ``None`` when the cluster does not know it."""
    try:
        return client.get_job_info(submission_id)
    except RuntimeError as exc:
        if "does not exist" in str(exc) or "404" in str(exc):
            return None
        raise KitaruBackendError(f"the Ray Jobs API did not answer for job {submission_id!r}: {_first_line(exc)}") from None
    except (OSError, ConnectionError) as exc:
        raise KitaruBackendError(f"the Ray Jobs API cannot be reached: {_first_line(exc)}") from None


def _follow(client: Any, submission_id: str) -> Iterator[str]:
    """``tail_job_logs`` (an async iterator over a websocket) as plain lines."""
    loop = asyncio.new_event_loop()
    stream = client.tail_job_logs(submission_id).__aiter__()
    pending = ""
    try:
        while True:
            try:
                chunk = loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                break
            pending += chunk
            *lines, pending = pending.split("\n")
            yield from lines
        if pending:
            yield pending
    finally:
        loop.run_until_complete(stream.aclose())
        loop.close()


def _named_inputs(spec: ExecutionSpec) -> ExecutionSpec:
    """``spec`` with a run's positional arguments bound to the flow's parameter names (the driver gets JSON inputs).

    Raises:
        KitaruUsageError: the arguments do not bind to the flow's signature, or one is not a JSON value.
    """
    if spec.args and spec.function is not None:
        func = getattr(spec.function, "func", spec.function)
        try:
            bound = inspect.signature(func).bind(*spec.args, **spec.inputs)
        except TypeError as exc:
            raise KitaruUsageError(f"the flow of {spec.target!r} was called with arguments it does not take: {exc}.") from None
        if any(param.kind is param.VAR_POSITIONAL for param in bound.signature.parameters.values()):
            raise KitaruUsageError("a flow taking *args runs on the ray backend with keyword arguments only.")
        spec = dataclasses.replace(spec, inputs=dict(bound.arguments), args=())
    try:
        json.dumps(dict(spec.inputs), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise KitaruUsageError(
            f"a run on the ray backend passes its inputs as JSON ({exc}); pass data by reference (a path, a URL, an artifact)."
        ) from None
    return spec


def _check_address(address: Any) -> str:
    if not address:
        raise KitaruUsageError(
            "the ray backend needs the cluster's dashboard address: --backend-option address=http://HOST:8265."
        )
    text = str(address).rstrip("/")
    if not text.startswith(("http://", "https://")) or len(text.split("://", 1)[1]) == 0:
        raise KitaruUsageError(
            f"ray address {text!r} is not the Jobs API's http(s) URL; give the dashboard's, e.g. http://HOST:8265."
        )
    return text


def _check_runtime_env(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise KitaruUsageError(f"the ray backend's runtime_env is not valid JSON ({exc}); give a JSON object.") from None
    if not isinstance(value, dict):
        raise KitaruUsageError(f"the ray backend's runtime_env must be a JSON object, not {type(value).__name__}.")
    unknown = sorted(set(value) - _RUNTIME_ENV_KEYS)
    if unknown:
        raise KitaruUsageError(
            f"runtime_env has unknown field(s) {unknown}; Ray's fields are: {', '.join(sorted(_RUNTIME_ENV_KEYS))}."
        )
    variables = value.get("env_vars", {})
    if not isinstance(variables, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
        raise KitaruUsageError('runtime_env env_vars must map names to strings, e.g. {"env_vars": {"LOG_LEVEL": "debug"}}.')
    secrets = sorted(name for name in variables if _looks_secret(name))
    if secrets:
        raise KitaruUsageError(
            f"runtime_env env_vars {secrets} look like secrets, and the Ray dashboard shows a job's runtime_env; "
            "store them with `kitaru secrets set` or in the cluster's own environment."
        )
    return value


def _looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def _check_number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise KitaruUsageError(f"the ray backend's {name} option is a number, not {value!r}.") from None
    if number < 0:
        raise KitaruUsageError(f"the ray backend's {name} option cannot be negative.")
    return number


def _check_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise KitaruUsageError(f"the ray backend's {name} option is true or false, not {value!r}.")


def _is_resource_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, int | float) for k, v in value.items())


def _pip_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.get("packages", []))
    return list(value)


def _requirements(path: Path) -> list[str]:
    try:
        lines = path.expanduser().read_text().splitlines()
    except OSError as exc:
        raise KitaruUsageError(f"the ray stack's requirements file {str(path)!r} cannot be read ({exc.strerror}).") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
