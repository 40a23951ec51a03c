"""Previews of stored values (checkpoint outputs, flow results) for the execution page.

The server never reads storage: the runtime records a bounded preview (JSON
text, a table's first rows, an array's shape and first values, or a note) with
the value's record when it commits, and the page shows that.
"""

from __future__ import annotations

from typing import Any

from kitaru_server.ui._format import size

__all__ = ["preview"]


def preview(meta: dict[str, Any] | None) -> dict[str, Any]:
    """What the page shows for a stored value: ``{"kind": "json"|"table"|"tensor"|"note", ...}``, its ``size`` and ``type``."""
    if not meta:
        return {"kind": "note", "message": "No output recorded yet."}
    about = {"size": size(meta.get("size")), "type": meta.get("type_path") or "", "serializer": meta.get("serializer")}
    recorded = meta.get("preview")
    if not isinstance(recorded, dict) or recorded.get("kind") not in ("json", "table", "tensor", "note"):
        return {
            **about,
            "kind": "note",
            "message": "No preview was recorded with this value; load it with KitaruClient().artifacts.",
        }
    return {**about, **recorded}
