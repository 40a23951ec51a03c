"""What the container backends (kuberay, vertex, sagemaker) share: the image, the driver's command and environment,
and job names derived from an execution."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kitaru.backends._options import BackendOption
from kitaru.contracts.launch import BackendReport, BackendState, ExecutionSpec, driver_arguments, driver_environment
from kitaru.errors import KitaruUsageError

__all__ = [
    "status_lines",
    "CODE_SNAPSHOT_OPTION",
    "CLUSTER_LAUNCHER",
    "CONTAINER_BACKENDS",
    "RUNTIME_IMAGE",
    "check_container_spec",
    "cluster_auth_environment",
    "container_environment",
    "driver_command",
    "job_name",
    "resolve_image",
    "with_code",
]

CONTAINER_BACKENDS = ("kuberay", "vertex", "sagemaker")
RUNTIME_IMAGE = "kitaru-runtime"
CLUSTER_LAUNCHER = ["python", "-m", "kitaru.runtime.launch"]
"""The container command of every node of a Vertex or SageMaker job (it reads the node's role, then starts Ray)."""
_SECRET_ENV = ("KITARU_API_KEY",)

CODE_SNAPSHOT_OPTION = BackendOption(
    "code_snapshot",
    "bool",
    "Ship the project's source with each run as a snapshot in the stack's storage (false: the image holds the code).",
    default=True,
)


def with_code(spec: ExecutionSpec, options: Mapping[str, Any]) -> ExecutionSpec:
    """``spec`` with its project's code snapshot (see :mod:`kitaru.runtime._code`), unless the stack turned it off."""
    if not options["code_snapshot"]:
        return spec
    from kitaru.runtime import ship_code

    return ship_code(spec)


def resolve_image(backend: str, spec: ExecutionSpec, *, option: str | None, registry: str | None) -> str:
    """The image the job runs: the spec's (a deployment's), the backend option's, else the runtime image in the stack's registry.

    Raises:
        KitaruUsageError: none of them is set.
    """
    if spec.image:
        return spec.image
    if option:
        return option
    if registry:
        from importlib.metadata import version  # the SDK's __version__ is a layer above the backends

        return f"{registry.rstrip('/')}/{RUNTIME_IMAGE}:{version('kitaru')}"
    raise KitaruUsageError(
        f"the {backend} backend needs an image: create the stack with --registry REGISTRY "
        "(the runtime image is pushed there by `kitaru build`) or --backend-option image=IMAGE."
    )


def driver_command(spec: ExecutionSpec) -> list[str]:
    """``python -m kitaru.runtime ...`` driving ``spec``."""
    return ["python", "-m", "kitaru.runtime", *driver_arguments(spec)]


def container_environment(spec: ExecutionSpec) -> dict[str, str]:
    """The driver's environment in a container, without secrets (the API key travels separately) or this machine's home."""
    env = {key: value for key, value in driver_environment(spec).items() if key not in _SECRET_ENV and key != "KITARU_HOME"}
    if spec.storage_url:
        env["KITARU_STORAGE_URL"] = spec.storage_url
    return env


def job_name(exec_id: str, action: str, *, limit: int, prefix: str = "kitaru") -> str:
    """A DNS-1035 name for the job driving ``exec_id`` for ``action``, at most ``limit`` characters.

    The same execution and action always give the same name (submission is idempotent); a name cut
    to fit keeps a digest of the full one so two long execution ids never collide.
    """
    slug = re.sub(r"[^a-z0-9-]+", "-", exec_id.lower()).strip("-")
    name = f"{prefix}-{slug}-{action}"
    if len(name) > limit:
        digest = hashlib.sha256(f"{exec_id}/{action}".encode()).hexdigest()[:8]
        name = f"{name[: limit - 9].rstrip('-')}-{digest}"
    return name


def cluster_auth_environment() -> dict[str, str]:
    """Ray token auth for a cluster that the launcher forms: one random token per job, shared by its nodes and driver.

    The nodes of a Vertex or SageMaker job share no files, so Ray's own token file on the head would
    lock the workers out; every node gets the same token in its environment instead.
    """
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_urlsafe(32)}


def check_container_spec(backend: str, spec: ExecutionSpec) -> None:
    """Refuse what a driver in a container cannot have: no server to record into, or positional Python arguments.

    Raises:
        KitaruUsageError: naming what to change.
    """
    if not spec.server_url:
        raise KitaruUsageError(
            f"the {backend} backend runs drivers in containers: connect to a Kitaru server first (kitaru login URL)."
        )
    if getattr(spec, "args", ()):
        raise KitaruUsageError(f"the {backend} backend passes a flow's inputs as JSON: call .run() with keyword arguments.")


def status_lines(status: Callable[[], BackendReport], label: str, *, follow: bool, interval: float) -> Iterator[str]:
    """A job's status transitions as log lines (``label: state (message)``); ``follow``: until the job ends."""
    last = None
    while True:
        report = status()
        line = f"{label}: {report.state.value}" + (f" ({report.message})" if report.message else "")
        if line != last:
            yield line
            last = line
        if not follow or report.state.is_finished or report.state is BackendState.UNKNOWN:
            return
        time.sleep(interval)
