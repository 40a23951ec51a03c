"""Bounded previews of stored values, computed when a value is stored and kept with its record.

The server never reads storage (SPEC §1): the UI and MCP show this preview from
the database. JSON and pydantic values preview as indented JSON text, Arrow
tables (and DataFrames) as their first rows, arrays as shape, dtype and a few
values; anything else as a note (a pickled value is never loaded to show it).
Every preview stays under :data:`MAX_PREVIEW_BYTES` of JSON.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_PREVIEW_BYTES", "preview_of"]

MAX_PREVIEW_BYTES = 8 * 1024
ROWS, COLUMNS, CELL_CHARS = 20, 24, 120


def preview_of(value: Any, serializer: str, type_path: str) -> dict[str, Any]:
    """The preview of ``value`` as stored by ``serializer`` (``{"kind": "json"|"table"|"tensor"|"note", ...}``)."""
    try:
        if serializer == "json":
            return _json_text(value)
        if serializer == "pydantic":
            return _json_text(value.model_dump(mode="json"))
        if serializer == "arrow":
            return _bounded(_arrow(value))
    except Exception as exc:  # noqa: BLE001 - a preview never fails a commit; it says why it is missing
        return {"kind": "note", "message": f"no preview: {type(exc).__name__}: {str(exc)[:200]}"}
    return {
        "kind": "note",
        "message": f"A {serializer} value of type {type_path or 'unknown'}; it is not previewed (loading it would run code). "
        "Load it with KitaruClient().artifacts.",
    }


def _json_text(data: Any) -> dict[str, Any]:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=repr)
    limit = MAX_PREVIEW_BYTES - 256
    if len(text.encode()) > limit:
        text = text.encode()[:limit].decode(errors="ignore") + f"\n… ({len(text)} characters in all)"
    return {"kind": "json", "text": text}


def _arrow(value: Any) -> dict[str, Any]:
    import numpy as np

    if isinstance(value, np.ndarray):
        text = np.array2string(value, threshold=60, edgeitems=3, max_line_width=120)
        return {
            "kind": "tensor",
            "shape": " × ".join(str(n) for n in value.shape) or "scalar",
            "dtype": str(value.dtype),
            "text": text,
        }
    import pyarrow as pa

    table = value if isinstance(value, pa.Table) else pa.Table.from_pandas(value)
    columns = table.column_names[:COLUMNS]
    head = table.select(columns).slice(0, ROWS).to_pylist()
    return {
        "kind": "table",
        "columns": [{"name": name, "type": str(table.schema.field(name).type)} for name in columns],
        "rows": [[_cell(row[name]) for name in columns] for row in head],
        "total_rows": table.num_rows,
        "total_columns": table.num_columns,
    }


def _bounded(preview: dict[str, Any]) -> dict[str, Any]:
    """Drop table rows (or cut a tensor's text) until the preview fits."""
    while len(json.dumps(preview, default=str).encode()) > MAX_PREVIEW_BYTES:
        if preview.get("rows"):
            preview["rows"] = preview["rows"][: len(preview["rows"]) // 2]
        elif preview.get("text"):
            preview["text"] = preview["text"][: len(preview["text"]) // 2] + "…"
        else:
            preview["columns"] = preview.get("columns", [])[:4]
            break
    return preview


def _cell(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
