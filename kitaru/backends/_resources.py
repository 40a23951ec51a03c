"""The Ray resources a flow's checkpoints ask for, so a container backend can refuse a job no node could run."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

__all__ = ["requested_resources"]

_BUILTIN = {"CPU", "memory", "object_store_memory"}


def requested_resources(target: str | None) -> dict[str, str]:
    """``{resource: checkpoint}`` for every non-CPU resource asked by a checkpoint defined beside the target's flow.

    The module is imported as the driver would import it; a target that cannot be imported here
    (code only in the image) yields nothing and the cluster decides.
    """
    module = _module(target) if target else None
    found: dict[str, str] = {}
    for name, value in vars(module).items() if module is not None else ():
        options = getattr(value, "ray_options", None)
        if not isinstance(options, dict) or not callable(value):
            continue
        for resource in options.get("resources") or {}:
            if resource not in _BUILTIN:
                found.setdefault(str(resource), name)
        if float(options.get("num_gpus") or 0) > 0:
            found.setdefault("GPU", name)
    return found


def _module(target: str) -> Any:
    location = target.rpartition(":")[0]
    try:
        if location.endswith(".py"):
            path = Path(location)
            spec = importlib.util.spec_from_file_location(f"_kitaru_target_{abs(hash(path.resolve()))}", path)
            if spec is None or spec.loader is None:
                return None
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(path.resolve().parent))
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
            return module
        return importlib.import_module(location)
    except Exception:  # noqa: BLE001 - not importable on this machine: leave the check to the cluster
        return None
