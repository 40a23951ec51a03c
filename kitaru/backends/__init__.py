"""Compute backends: where a driver runs. Each implements :class:`kitaru.contracts.launch.Backend`.

A stack names its backend; :func:`get_backend` imports the adapter only when it is
used (a backend's SDK is an optional extra). Adding a backend is one entry in
``_REGISTRY`` (name → ``module:class``, extra) plus its module, and one fixture
parameter in the conformance suite. A backend module declares its options (``OPTIONS``)
so stacks are checked and ``kitaru stack create --help`` lists them without importing any SDK.

- ``local``: a driver thread in the caller's process (``Flow.run`` from Python).
- ``process``: a detached ``python -m kitaru.runtime ...`` driver on this machine
  (the CLI, MCP, the UI, and ``detach=True``).
- ``ray``: a Ray job on an existing cluster, through the Ray Jobs API.
- ``kuberay``, ``vertex``, ``sagemaker``: a KubeRay RayJob, a Vertex AI CustomJob, a SageMaker
  training job, in the stack's container image (docs/backends.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from kitaru.backends._container import CONTAINER_BACKENDS
from kitaru.backends._options import BackendOption, validate_options
from kitaru.contracts.launch import Backend
from kitaru.errors import KitaruUsageError

__all__ = [
    "CONTAINER_BACKENDS",
    "BackendOption",
    "available_backends",
    "backend_for_stack",
    "backend_options",
    "get_backend",
    "launch",
    "validate_backend_options",
]

# name -> ("module:class", the extra that installs its SDK, or None)
_REGISTRY: dict[str, tuple[str, str | None]] = {
    "local": ("kitaru.backends.local:LocalBackend", None),
    "process": ("kitaru.backends.process:ProcessBackend", None),
    "kuberay": ("kitaru.backends.kuberay:KubeRayBackend", "kuberay"),
    "vertex": ("kitaru.backends.vertex:VertexBackend", "vertex"),
    "sagemaker": ("kitaru.backends.sagemaker:SageMakerBackend", "sagemaker"),
    "ray": ("kitaru.backends.ray:RayBackend", None),
}
# What a stack may name that is not an adapter itself: the local backends, picked by the caller.
_LOCAL_NAMES = ("default", "local")


def available_backends() -> list[str]:
    """The backends this installation knows, by name."""
    return sorted(_REGISTRY)


def _module(name: str) -> Any:
    if name not in _REGISTRY:
        raise KitaruUsageError(f"unknown backend {name!r}; the available backends are: {', '.join(available_backends())}.")
    return importlib.import_module(_REGISTRY[name][0].partition(":")[0])


def backend_options(name: str) -> tuple[BackendOption, ...]:
    """The options backend ``name`` declares (empty for one that declares none)."""
    return tuple(getattr(_module(name), "OPTIONS", ()))


def validate_backend_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` checked against the options backend ``name`` declares, with their defaults filled in.

    Raises:
        KitaruUsageError: an unknown option, a missing required one or a value of the wrong type.
    """
    module = _module(name)
    check = getattr(module, "check_options", None)  # a backend whose options need more than declared types
    if check is not None:
        return check(dict(options or {}))
    return validate_options(name, backend_options(name), options or {})


def get_backend(name: str, options: Mapping[str, Any] | None = None, **context: Any) -> Backend:
    """The backend ``name``, configured with a stack's ``backend_options`` (``context``: e.g. its ``container_registry``).

    Raises:
        KitaruUsageError: no backend has this name (the message lists those that do), its options are
            invalid, or its extra is not installed (the message names the ``pip install`` that adds it).
    """
    module = _module(name)
    reference, extra = _REGISTRY[name]
    try:
        return getattr(module, reference.partition(":")[2])(**dict(options or {}), **context)
    except ImportError as exc:  # container backends import their SDK when they are built
        if extra is None:
            raise
        raise KitaruUsageError(
            f"backend {name!r} needs {exc.name or 'its SDK'}, which is not installed; pip install 'kitaru[{extra}]'."
        ) from None


def backend_for_stack(
    backend: str | None, options: Mapping[str, Any] | None = None, *, detach: bool, container_registry: str | None = None
) -> Backend:
    """The backend a stack's ``backend`` value means: ``default``/``local`` is a driver thread in this
    process, or with ``detach`` a detached driver process on this machine; other names are adapters
    (given the stack's ``container_registry``)."""
    if backend is None or backend in _LOCAL_NAMES:
        return get_backend("process" if detach else "local")
    return get_backend(backend, options, container_registry=container_registry)


def __getattr__(name: str) -> Any:
    if name == "launch":  # lazily: the launch path imports the contracts' lifecycle rules
        from kitaru.backends._launch import launch

        return launch
    raise AttributeError(f"module 'kitaru.backends' has no attribute {name!r}")
