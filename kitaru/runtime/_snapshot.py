"""Code snapshots of deployed flows: a zip of the flow's package (or module file) kept in storage.

Deploying packs the source of the flow's top-level package (every ``.py`` file under it),
or the single module file for a flow defined in a module or script of its own. Invoking
unpacks that zip into a directory named by its digest, puts it first on ``sys.path``,
imports the flow from it (replacing modules of the same names imported from elsewhere) and
makes cloudpickle send those modules' code by value, so Ray workers run the snapshot too,
never whatever code is on the caller's or the worker's disk.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitaru.errors import KitaruUsageError

if TYPE_CHECKING:
    from kitaru.flow import Flow
    from kitaru.storage import Storage

__all__ = ["load_snapshot", "pack_flow", "unpack"]

_MAX_SNAPSHOT_BYTES = 50 * 1024**2


def pack_flow(flow: Flow) -> tuple[bytes, str]:
    """The zip of ``flow``'s code and the flow's ``module:qualname`` inside it.

    Raises:
        KitaruUsageError: the flow has no source file (a notebook or an interactive session), or its package is too large.
    """
    module = sys.modules.get(flow.func.__module__)
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        raise KitaruUsageError(
            f"flow {flow.name!r} is defined in a notebook or an interactive session; move it into a module to deploy it."
        )
    qualname = flow.import_path.partition(":")[2]
    file = Path(path).resolve()
    name = flow.func.__module__
    if name == "__main__" or name not in _importable_names(file):
        name = file.stem  # a script: snapshot it as a module of its own
    top = name.split(".")[0]
    root = file.parents[len(name.split(".")) - 1] if file.name != "__init__.py" else file.parents[len(name.split("."))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if "." in name or file.name == "__init__.py":
            for source in sorted((root / top).rglob("*.py")):
                if "__pycache__" not in source.parts:
                    archive.write(source, source.relative_to(root).as_posix())
        else:
            archive.write(file, f"{top}.py")
    data = buffer.getvalue()
    if len(data) > _MAX_SNAPSHOT_BYTES:
        raise KitaruUsageError(f"the code of flow {flow.name!r} packs to {len(data)} bytes; keep data out of package {top!r}.")
    return data, f"{name}:{qualname}"


def load_snapshot(storage: Storage, snapshot: dict[str, Any], flow_ref: str) -> Flow:
    """The flow ``flow_ref`` imported from the snapshot (unpacked once per digest, in the temp directory)."""
    from kitaru.runtime._targets import load_flow

    directory = unpack(storage, snapshot)
    top = flow_ref.partition(":")[0].split(".")[0]
    for loaded in [name for name in sys.modules if name == top or name.startswith(f"{top}.")]:
        del sys.modules[loaded]  # the caller's copy of the module must not shadow the snapshot
    sys.path.insert(0, str(directory))
    flow = load_flow(flow_ref)
    import cloudpickle

    for name, module in list(sys.modules.items()):
        if (name == top or name.startswith(f"{top}.")) and str(getattr(module, "__file__", "")).startswith(str(directory)):
            cloudpickle.register_pickle_by_value(module)
    return flow


def unpack(storage: Storage, snapshot: dict[str, Any]) -> Path:
    """The directory holding the unpacked snapshot (unpacked once per digest, in the temp directory)."""
    from kitaru.storage import record_digest

    digest, algorithm = record_digest(snapshot)
    directory = Path(tempfile.gettempdir()) / "kitaru-snapshots" / digest
    if not directory.is_dir():
        data = storage.get(snapshot["uri"], digest, algorithm)
        staging = Path(tempfile.mkdtemp(prefix="kitaru-snapshot-"))
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            archive.extractall(staging)
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, directory)
        except OSError:
            pass  # another driver unpacked the same snapshot first
    return directory


def _importable_names(file: Path) -> set[str]:
    """The dotted names under which ``file`` is importable from ``sys.path``."""
    names = set()
    for entry in sys.path:
        base = Path(entry or os.getcwd()).resolve()
        try:
            relative = file.relative_to(base)
        except ValueError:
            continue
        parts = list(relative.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names
