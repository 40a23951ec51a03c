"""Compute backends: where a driver runs. Each implements :class:`kitaru.contracts.launch.Backend`.

A stack names its backend; :func:`get_backend` imports the adapter only when it is
used (a backend's SDK is an optional extra). Adding a backend is one entry in
``_REGISTRY`` (name → ``module:class``, extra) plus its module, and one fixture
parameter in the conformance suite.

- ``local``: a driver thread in the caller's process (``Flow.run`` from Python).
- ``process``: a detached ``python -m kitaru.runtime ...`` driver on this machine
  (the CLI, MCP, the UI, and ``detach=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitaru._values import resolve_path
from kitaru.contracts.launch import Backend
from kitaru.errors import KitaruUsageError

__all__ = ["available_backends", "backend_for_stack", "get_backend", "launch"]

# name -> ("module:class", the extra that installs its SDK, or None)
_REGISTRY: dict[str, tuple[str, str | None]] = {
    "local": ("kitaru.backends.local:LocalBackend", None),
    "process": ("kitaru.backends.process:ProcessBackend", None),
}
# What a stack may name that is not an adapter itself: the local backends, picked by the caller.
_LOCAL_NAMES = ("default", "local")


def available_backends() -> list[str]:
    """The backends this installation knows, by name."""
    return sorted(_REGISTRY)


def get_backend(name: str, options: Mapping[str, Any] | None = None) -> Backend:
    """The backend ``name``, configured with a stack's ``backend_options``.

    Raises:
        KitaruUsageError: no backend has this name (the message lists those that do), or its
            extra is not installed (the message names the ``pip install`` that adds it).
    """
    if name not in _REGISTRY:
        raise KitaruUsageError(f"unknown backend {name!r}; the available backends are: {', '.join(available_backends())}.")
    reference, extra = _REGISTRY[name]
    try:
        adapter = resolve_path(reference)
    except ImportError as exc:
        if extra is None:
            raise
        raise KitaruUsageError(
            f"backend {name!r} needs {exc.name or 'its SDK'}, which is not installed; pip install 'kitaru[{extra}]'."
        ) from None
    return adapter(**dict(options or {}))


def backend_for_stack(backend: str | None, options: Mapping[str, Any] | None = None, *, detach: bool) -> Backend:
    """The backend a stack's ``backend`` value means: ``default``/``local`` is a driver thread in this
    process, or with ``detach`` a detached driver process on this machine; other names are adapters."""
    if backend is None or backend in _LOCAL_NAMES:
        return get_backend("process" if detach else "local")
    return get_backend(backend, options)


def __getattr__(name: str) -> Any:
    if name == "launch":  # lazily: the launch path imports the contracts' lifecycle rules
        from kitaru.backends._launch import launch

        return launch
    raise AttributeError(f"module 'kitaru.backends' has no attribute {name!r}")
