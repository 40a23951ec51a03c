"""Previews of stored values (checkpoint outputs, flow results) for the execution page.

The UI reads storage like any client (:mod:`kitaru.storage`, digest checked).
It previews only formats that decode without running code: JSON and pydantic
JSON (pretty-printed), and Arrow IPC (a table's first rows, an array's shape
and first values). A pickled value is described, never unpickled: loading it
could run arbitrary code in the server.
"""

from __future__ import annotations

from typing import Any

from kitaru_server.ui._format import json_pretty, size

__all__ = ["MAX_JSON_BYTES", "MAX_TABLE_BYTES", "preview"]

MAX_JSON_BYTES = 1 << 20
MAX_TABLE_BYTES = 64 << 20  # local files are memory-mapped, so a large table costs little to open
ROWS, COLUMNS, CELL_CHARS = 20, 24, 120


def preview(meta: dict[str, Any] | None, settings: dict[str, Any]) -> dict[str, Any]:
    """What the page shows for a stored value: ``{"kind": "json"|"table"|"tensor"|"note", ...}``, its ``size`` and ``type``."""
    if not meta:
        return {"kind": "note", "message": "No output recorded yet."}
    about = {"size": size(meta.get("size")), "type": meta.get("type_path") or "", "serializer": meta.get("serializer")}
    serializer = meta.get("serializer")
    limit = MAX_TABLE_BYTES if serializer == "arrow" else MAX_JSON_BYTES
    if serializer not in ("json", "pydantic", "arrow"):
        return {
            **about,
            "kind": "note",
            "message": f"A {serializer} value of type {about['type'] or 'unknown'} ({about['size']}); "
            "it is not previewed here (loading it would run code). "
            "Load it with KitaruClient().artifacts.",
        }
    if (meta.get("size") or 0) > limit:
        return {
            **about,
            "kind": "note",
            "message": f"{about['size']} is too large to preview here; load it with KitaruClient().artifacts.",
        }
    try:
        data = _read(meta, settings)
        if serializer == "arrow":
            return {**about, **_arrow(data, meta.get("type_path") or "")}
        import json

        return {**about, "kind": "json", "text": json_pretty(json.loads(bytes(data)))}
    except Exception as exc:  # noqa: BLE001 - a preview never breaks the page; it says why it is missing
        return {**about, "kind": "note", "message": f"The value could not be read for a preview: {_first_line(exc)}"}


def _read(meta: dict[str, Any], settings: dict[str, Any]) -> memoryview:
    from kitaru.storage import open_storage, record_digest

    storage = open_storage(settings["storage_url"], settings.get("storage_options") or {})
    return storage.get(meta["uri"], *record_digest(meta))


def _arrow(data: memoryview, type_path: str) -> dict[str, Any]:
    import pyarrow as pa

    source = pa.BufferReader(pa.py_buffer(data))
    if type_path.endswith(":ndarray"):
        import numpy as np

        array = pa.ipc.read_tensor(source).to_numpy()
        text = np.array2string(array, threshold=200, edgeitems=5, max_line_width=120)
        return {
            "kind": "tensor",
            "shape": " × ".join(str(n) for n in array.shape) or "scalar",
            "dtype": str(array.dtype),
            "text": text,
        }
    table = pa.ipc.open_stream(source).read_all()
    columns = table.column_names[:COLUMNS]
    head = table.select(columns).slice(0, ROWS).to_pylist()
    return {
        "kind": "table",
        "columns": [{"name": name, "type": str(table.schema.field(name).type)} for name in columns],
        "rows": [[_cell(row[name]) for name in columns] for row in head],
        "total_rows": table.num_rows,
        "total_columns": table.num_columns,
    }


def _cell(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
