"""Compute backends: where a stack's drivers run (SPEC §7).

Every backend implements :class:`~kitaru.contracts.launch.Backend`; :func:`get_backend`
builds the one a stack names, importing its module (and its optional dependencies) only then.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from kitaru.contracts.launch import Backend
from kitaru.errors import KitaruUsageError

__all__ = ["BACKENDS", "get_backend", "validate_backend_options"]

# name -> "module:class", imported on first use
BACKENDS: dict[str, str] = {"ray": "kitaru.backends.ray:RayBackend"}


def _backend_class(name: str) -> Any:
    if name not in BACKENDS:
        raise KitaruUsageError(f"unknown backend {name!r}; the available backends are: {', '.join(sorted(BACKENDS))}.")
    module, _, attribute = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def get_backend(name: str, options: Mapping[str, Any] | None = None) -> Backend:
    """The backend ``name`` configured with a stack's ``options``.

    Raises:
        KitaruUsageError: an unknown backend, or options it does not accept.
    """
    return _backend_class(name)(dict(options or {}))


def validate_backend_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stack's backend options as the backend normalises them; raises :class:`KitaruUsageError` naming what is wrong."""
    if name not in BACKENDS:
        return dict(options or {})
    return _backend_class(name).validate_options(dict(options or {}))
