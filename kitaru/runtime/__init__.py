"""The runtime on Ray: the driver of a flow body, checkpoint attempts as Ray tasks, and the runtime actor.

Backends start drivers through :func:`start_execution`, :func:`resume_execution` and
:func:`start_replay`; each returns the running driver. Deployments pack a flow's code with
:func:`pack_flow` and drivers load it back with :func:`load_snapshot`; container backends ship a run's
project with :func:`ship_code`. Imported lazily: a private
runtime module does not pull in the driver.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ensure_ray",
    "load_flow",
    "load_flow_function",
    "load_snapshot",
    "pack_flow",
    "prompts_on_terminal",
    "resume_execution",
    "ship_code",
    "start_execution",
    "start_replay",
]

_HOMES = {
    "ensure_ray": "kitaru.runtime._ray",
    "load_flow": "kitaru.runtime._targets",
    "load_snapshot": "kitaru.runtime._snapshot",
    "pack_flow": "kitaru.runtime._snapshot",
    "prompts_on_terminal": "kitaru.runtime._driver",
    "ship_code": "kitaru.runtime._code",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        return getattr(importlib.import_module(_HOMES.get(name, "kitaru.runtime._executions")), name)
    raise AttributeError(f"module 'kitaru.runtime' has no attribute {name!r}")
