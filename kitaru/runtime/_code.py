"""Code snapshots for container images: the project's source travels with a run, the image holds only dependencies.

A container backend packs the directory a flow is imported from (the ``sys.path`` entry holding its
top-level module or package, or a script's folder) into a zip, every file but hidden ones (``.git``,
``.venv``, ``.env``, caches) and build output, and puts it in the stack's storage. The zip is
deterministic and storage is content-addressed, so unchanged code is the same object run after run.
The driver in the container finds it in ``KITARU_CODE_SNAPSHOT``, unpacks it once per digest, puts it
first on ``sys.path`` before importing the flow, and sends every module it imports from it to Ray
workers by value, so the workers run the snapshot too. An image is rebuilt only when dependencies
change (``kitaru build``).
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import os
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitaru.contracts.launch import ExecutionSpec, LaunchAction
from kitaru.errors import KitaruError, KitaruUsageError

if TYPE_CHECKING:
    from kitaru.config import Settings
    from kitaru.storage import Storage

__all__ = ["CODE_SNAPSHOT_ENV", "in_snapshot", "pack_project", "project_root", "ship_code", "use_code_snapshot"]

CODE_SNAPSHOT_ENV = "KITARU_CODE_SNAPSHOT"
_SKIPPED_DIRS = {"__pycache__", "node_modules", "venv", "build", "dist"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_MAX_BYTES = 50 * 1024**2
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same files always give the same zip


def project_root(target: str) -> tuple[Path, str] | None:
    """The directory ``target``'s code is imported from, and the target as a driver names it inside the snapshot.

    ``None`` when there is nothing of the project's to ship: an installed package (the image has it),
    or a module this process cannot find.
    """
    location, _, attribute = target.rpartition(":")
    if location.endswith(".py") or os.sep in location or location.startswith("."):
        path = Path(location).expanduser().resolve()
        return (path.parent, f"{path.name}:{attribute}") if path.is_file() else None
    top = location.split(".")[0]
    try:
        spec = importlib.util.find_spec(top) or importlib.machinery.PathFinder.find_spec(top, [os.getcwd()])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))).parent
    elif spec.origin and spec.origin.endswith(".py"):
        root = Path(spec.origin).parent
    else:
        return None
    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "purelib", "platlib")}
    if {"site-packages", "dist-packages"} & set(root.parts) or root.resolve() in installed:
        return None
    return root.resolve(), target


def pack_project(root: Path) -> bytes:
    """A deterministic zip of the source under ``root`` (see the module docstring for what is left out).

    Raises:
        KitaruUsageError: the source is over 50 MiB.
    """
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in _source_files(root):
            data = path.read_bytes()
            total += len(data)
            if total > _MAX_BYTES:
                raise KitaruUsageError(
                    f"the project at {root} is over {_MAX_BYTES // 1024**2} MiB of files; move data out of it "
                    "or set --backend-option code_snapshot=false and build the code into the image."
                )
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_EPOCH)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _source_files(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            name for name in dirnames if not name.startswith(".") and name not in _SKIPPED_DIRS and not name.endswith(".egg-info")
        )
        for name in sorted(filenames):
            path = Path(directory, name)
            if not name.startswith(".") and not name.endswith(_SKIPPED_SUFFIXES) and path.is_file():
                yield path


def ship_code(spec: ExecutionSpec) -> ExecutionSpec:
    """``spec`` with its project's code snapshot put in the stack's storage and named in the driver's environment.

    Unchanged where there is nothing to ship or nowhere to ship it: an invoke (a deployment has its own
    snapshot), installed code, or a spec with neither a storage URL nor a stack of its own.
    """
    if spec.action is LaunchAction.INVOKE:
        return spec
    target = spec.target or _recorded_target(spec)
    found = project_root(target) if target else None
    storage = _stack_storage(spec) if found else None
    if found is None or storage is None:
        return spec
    root, inside = found
    stored = storage.put(pack_project(root))
    ref = {"uri": stored.uri, "digest": stored.digest, "digest_algorithm": stored.algorithm}
    environment = {**spec.environment, CODE_SNAPSHOT_ENV: json.dumps(ref, separators=(",", ":"))}
    return dataclasses.replace(spec, environment=environment, target=inside if spec.target else None)


def _recorded_target(spec: ExecutionSpec) -> str | None:
    """The flow a resume, retry or replay drives: the ``flow_ref`` its execution recorded."""
    exec_id = spec.source_exec_id if spec.action is LaunchAction.REPLAY else spec.exec_id
    if not exec_id or not spec.server_url:
        return None
    from kitaru._service import connect_service

    try:
        return connect_service(spec.server_url, spec.api_key).get_execution(exec_id, with_calls=False).get("flow_ref")
    except KitaruError:
        return None


def _stack_storage(spec: ExecutionSpec) -> Storage | None:
    from kitaru.storage import open_storage

    if spec.storage_url:
        url, options = spec.storage_url, {}
    elif spec.stack and spec.stack != "default" and spec.server_url:
        from kitaru._service import connect_service
        from kitaru.contracts.records import BROKER_OPTION

        row = connect_service(spec.server_url, spec.api_key).get_stack(spec.stack)
        url, options = row["storage_url"], dict(row["storage_options"] or {})
        if (row.get("backend_options") or {}).get("credentials"):
            options[BROKER_OPTION] = spec.stack
    else:
        return None
    return open_storage(url, options, service_url=spec.server_url, api_key=spec.api_key) if url else None


# -- in the container -----------------------------------------------------------------------------


def use_code_snapshot(settings: Settings) -> Path | None:
    """Fetch the snapshot ``KITARU_CODE_SNAPSHOT`` names, put it first on ``sys.path``, send its modules by value.

    Returns its directory, or ``None`` when the driver runs without one (the image holds the code).

    Raises:
        KitaruUsageError: the variable is not a snapshot reference.
    """
    raw = os.environ.get(CODE_SNAPSHOT_ENV)
    if not raw:
        return None
    try:
        ref = json.loads(raw)
        ref["uri"], ref["digest"]  # noqa: B018 - both must be there
    except (ValueError, TypeError, KeyError):
        raise KitaruUsageError(f"{CODE_SNAPSHOT_ENV} is not a code snapshot reference: {raw[:80]!r}.") from None
    from kitaru._service import connect_service
    from kitaru._stacks import apply_stack
    from kitaru.runtime._snapshot import unpack
    from kitaru.storage import open_storage

    stacked = apply_stack(settings, connect_service(settings.service_url, settings.api_key), settings.stack)
    storage = open_storage(stacked.storage_url, stacked.storage_options, service_url=stacked.service_url, api_key=stacked.api_key)
    directory = unpack(storage, ref)
    sys.path.insert(0, str(directory))
    sys.meta_path.insert(0, _ByValueFinder(directory))
    importlib.invalidate_caches()
    return directory


def in_snapshot(target: str, directory: Path) -> str:
    """A script target named relative to the project (``flows.py:f``) as the snapshot's file; other targets as they are."""
    location, _, attribute = target.rpartition(":")
    if location.endswith(".py") and not os.path.isabs(location):
        return f"{directory / location}:{attribute}"
    return target


class _ByValueFinder(importlib.abc.MetaPathFinder):
    """Finds modules in the snapshot and registers each with cloudpickle once imported: Ray workers get their code."""

    def __init__(self, directory: Path) -> None:
        self._directory = str(directory)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        spec = importlib.machinery.PathFinder.find_spec(name, path if path is not None else [self._directory])
        if spec is None or spec.loader is None or not str(spec.origin or "").startswith(self._directory + os.sep):
            return None
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _send_by_value(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _send_by_value(module: Any) -> None:
    # Ray pickles remote functions with its own copy of cloudpickle, which keeps its own registry.
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    try:
        from ray import cloudpickle as ray_cloudpickle
    except ImportError:
        return
    ray_cloudpickle.register_pickle_by_value(module)
