"""Compute backends (SPEC §7): each implements :class:`kitaru.contracts.launch.Backend`.

Backends are imported lazily by name; a backend whose extra is missing fails with one line naming
the extra to install. Each backend module declares its options (``OPTIONS``) so stacks can be
validated and ``kitaru stack create --help`` can list them without importing any cloud SDK.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from kitaru.backends._options import BackendOption, validate_options
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruUsageError

__all__ = ["BACKENDS", "BackendOption", "backend_options", "get_backend", "validate_backend_options"]

# name -> (module, the extra that installs its client library)
BACKENDS: dict[str, tuple[str, str | None]] = {
    "kuberay": ("kitaru.backends.kuberay", "kuberay"),
    "vertex": ("kitaru.backends.vertex", "vertex"),
    "sagemaker": ("kitaru.backends.sagemaker", "sagemaker"),
}


def _module(name: str) -> Any:
    if name not in BACKENDS:
        raise KitaruUsageError(f"unknown backend {name!r}; choose one of {', '.join(sorted(BACKENDS))}.")
    return importlib.import_module(BACKENDS[name][0])


def backend_options(name: str) -> tuple[BackendOption, ...]:
    """The options a backend accepts (empty for a backend without options)."""
    return tuple(getattr(_module(name), "OPTIONS", ()))


def validate_backend_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` checked against the backend's declared options, with defaults filled in.

    Raises:
        KitaruUsageError: an unknown option, a missing required one or a value of the wrong type.
    """
    return validate_options(name, backend_options(name), options or {})


def get_backend(name: str, options: Mapping[str, Any] | None = None, **context: Any) -> Any:
    """An instance of backend ``name`` configured with the stack's ``options``.

    Raises:
        KitaruUsageError: unknown backend or invalid options.
        KitaruFeatureNotAvailableError: the backend's client library is not installed (names the extra).
    """
    module = _module(name)
    checked = validate_backend_options(name, options)
    extra = BACKENDS[name][1]
    try:
        factory = module.create
        return factory(checked, **context)
    except ModuleNotFoundError as exc:
        raise KitaruFeatureNotAvailableError(f"the {name} backend needs {exc.name!r}: pip install 'kitaru[{extra}]'.") from None
