"""Finding a flow from a command-line target: ``module:flow`` or ``path/to/script.py:flow``.

A script loaded by path is imported under its file's stem (its directory first
on ``sys.path``, as ``python script.py`` would have it) without running its
``if __name__ == "__main__"`` block, and its module is pickled by value: Ray
workers receive its checkpoints' code, and the execution keeps a copy of the
flow so any process can resume it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from kitaru.errors import KitaruRuntimeError, KitaruUsageError

__all__ = ["load_flow"]


def load_flow(target: str) -> Any:
    """The :class:`~kitaru.Flow` named by ``target``.

    Raises:
        KitaruUsageError: a malformed target, a missing file, module or attribute, or an attribute that is not a flow.
        KitaruRuntimeError: importing the module raised.
    """
    from kitaru.flow import Flow

    location, sep, attribute = target.rpartition(":")
    if not sep or not location or not attribute:
        raise KitaruUsageError(
            f"target {target!r} is not MODULE:FLOW or PATH.py:FLOW, e.g. my_agents.research:research_flow or agent.py:research."
        )
    module = _load_script(location) if _is_path(location) else _import_module(location)
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise KitaruUsageError(f"{location!r} has no attribute {attribute!r}; name a function decorated with @kitaru.flow.")
        value = getattr(value, part)
    if not isinstance(value, Flow):
        raise KitaruUsageError(f"{target!r} is a {type(value).__name__}, not a flow; decorate the function with @kitaru.flow.")
    return value


def _is_path(location: str) -> bool:
    return location.endswith(".py") or os.sep in location or location.startswith(".")


def _import_module(name: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # the console script's sys.path starts at its own directory, not the project's
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise KitaruUsageError(
                f"module {name!r} cannot be imported from {cwd}; run from the project that defines it "
                "or give the script's path (path/to/file.py:flow)."
            ) from None
        raise _import_failed(name, exc) from None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing
        raise _import_failed(name, exc) from None


def _load_script(location: str) -> Any:
    import cloudpickle

    path = Path(location).expanduser().resolve()
    if not path.is_file():
        raise KitaruUsageError(f"script {location!r} does not exist; give the path of a Python file defining the flow.")
    name = path.stem if path.stem.isidentifier() else f"kitaru_script_{abs(hash(str(path)))}"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    if loaded is not None:
        name = f"kitaru_script_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise KitaruUsageError(f"{location!r} cannot be loaded as a Python module; give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's script raised while importing
        del sys.modules[name]
        raise _import_failed(str(path), exc) from None
    cloudpickle.register_pickle_by_value(module)
    return module


def _import_failed(name: str, exc: BaseException) -> KitaruRuntimeError:
    return KitaruRuntimeError(f"importing {name!r} raised {type(exc).__name__}: {exc}; fix it and run again.")
