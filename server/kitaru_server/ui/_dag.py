"""The DAG of an execution's checkpoint calls as inline SVG, laid out on the server.

Calls are placed in columns by depth (a call sits one column right of its
deepest parent, from ``parent_call_ids``) and in call order within a column.
A fan-out would make a column hundreds of nodes tall, so calls of one
checkpoint that share a column are drawn as one stacked node (``fetch ×20``,
with a bar of their statuses) once there are :data:`GROUP_MIN` of them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from html import escape
from typing import Any

from kitaru_server.ui._format import duration, status_class

__all__ = ["GROUP_MIN", "render_dag"]

GROUP_MIN = 8
NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 184, 44, 52, 12, 14
MIN_WIDTH = 760
_LABEL_CHARS = 24
_STATUS_ORDER = ("failed", "running", "pending", "cancelled", "overridden", "completed", "cached", "replayed")


@dataclasses.dataclass
class _Node:
    key: str
    calls: list[dict[str, Any]]
    column: int
    row: int = 0
    x: float = 0.0
    y: float = 0.0

    @property
    def grouped(self) -> bool:
        return len(self.calls) > 1


def render_dag(calls: list[dict[str, Any]], *, now: float) -> str:
    """An ``<svg>`` element (a string of trusted markup) of the calls and their dependencies; empty for no calls."""
    if not calls:
        return ""
    nodes, node_of = _nodes(calls)
    width, height = _place(nodes)
    edges = sorted(
        {
            (node_of[parent], node_of[c["call_id"]])
            for c in calls
            for parent in c.get("parent_call_ids") or []
            if parent in node_of and node_of[parent] != node_of[c["call_id"]]
        }
    )
    by_key = {node.key: node for node in nodes}
    # Scaled down to fit its card, but never below a legible width (wider graphs scroll).
    fit = f"max-width:100%;height:auto;min-width:{min(width, MIN_WIDTH)}px"
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="{fit}" role="img" aria-label="checkpoint calls and their dependencies">',
        '<defs><marker id="dag-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" class="dag-arrowhead"/></marker></defs><g class="dag-edges">',
    ]
    for source, target in edges:
        parts.append(_edge(by_key[source], by_key[target]))
    parts.append('</g><g class="dag-nodes">')
    parts.extend(_node(node, now) for node in nodes)
    parts.append("</g></svg>")
    return "".join(parts)


def _nodes(calls: list[dict[str, Any]]) -> tuple[list[_Node], dict[str, str]]:
    """Nodes in column order, and the node key of every call id."""
    by_id = {c["call_id"]: c for c in calls}
    depth: dict[str, int] = {}
    for call in calls:  # calls come in invocation order, so parents are seen before their children
        parents = [p for p in call.get("parent_call_ids") or [] if p in by_id]
        depth[call["call_id"]] = 1 + max((depth.get(p, 0) for p in parents), default=-1)
    columns: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        columns[depth[call["call_id"]]].append(call)
    nodes: list[_Node] = []
    node_of: dict[str, str] = {}
    for column in sorted(columns):
        members = columns[column]
        counts = Counter(c["name"] for c in members)
        groups: dict[str, _Node] = {}
        for call in members:
            if counts[call["name"]] >= GROUP_MIN:
                node = groups.get(call["name"])
                if node is None:
                    node = groups[call["name"]] = _Node(f"g{column}:{call['name']}", [], column)
                    nodes.append(node)
                node.calls.append(call)
            else:
                node = _Node(call["call_id"], [call], column)
                nodes.append(node)
            node_of[call["call_id"]] = node.key
    return nodes, node_of


def _place(nodes: list[_Node]) -> tuple[int, int]:
    per_column: dict[int, list[_Node]] = defaultdict(list)
    for node in nodes:
        node.row = len(per_column[node.column])
        per_column[node.column].append(node)
    tallest = max(len(column) for column in per_column.values())
    full = tallest * (NODE_H + ROW_GAP) - ROW_GAP
    for column, members in per_column.items():
        offset = (full - (len(members) * (NODE_H + ROW_GAP) - ROW_GAP)) / 2
        for node in members:
            node.x = PAD + column * (NODE_W + COL_GAP)
            node.y = PAD + offset + node.row * (NODE_H + ROW_GAP)
    columns = max(per_column) + 1
    return int(2 * PAD + columns * NODE_W + (columns - 1) * COL_GAP), int(2 * PAD + full)


def _edge(source: _Node, target: _Node) -> str:
    x1, y1 = source.x + NODE_W, source.y + NODE_H / 2
    x2, y2 = target.x - 2, target.y + NODE_H / 2
    bend = max((x2 - x1) / 2, 24)
    live = " live" if any(c["status"] in ("running", "pending") for c in target.calls) else ""
    curve = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    return f'<path class="dag-edge{live}" d="{curve}" marker-end="url(#dag-arrow)"/>'


def _node(node: _Node, now: float) -> str:
    first = node.calls[0]
    if node.grouped:
        counts = Counter(c["status"] for c in node.calls)
        status = next(s for s in _STATUS_ORDER + tuple(counts) if counts.get(s))
        label = f"{first['name']} ×{len(node.calls)}"
        sub = " · ".join(f"{counts[s]} {s}" for s in sorted(counts, key=_rank))
        title = f"{len(node.calls)} calls of {first['name']}: {sub}"
    else:
        status = first["status"]
        label = first["invocation_id"]
        sub = f"{status} · {duration(first.get('created_at'), first.get('ended_at'), now=now)}"
        attempts = len(first.get("attempts") or [])
        if attempts > 1:
            sub += f" · {attempts} attempts"
        title = f"{first['invocation_id']} ({first['name']}): {sub}"
    shown = label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"
    x, y = node.x, node.y
    parts = [
        f'<a href="#call={escape(first["invocation_id"])}" class="dag-node {status_class(status)}" '
        f'data-call="{escape(first["invocation_id"])}" data-members="{len(node.calls)}">',
        f"<title>{escape(title)}</title>",
        f'<rect class="dag-box" x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6"/>',
        f'<rect class="dag-stripe" x="{x:.1f}" y="{y:.1f}" width="5" height="{NODE_H}" rx="2"/>',
        f'<text class="dag-label" x="{x + 14:.1f}" y="{y + 18:.1f}">{escape(shown)}</text>',
        f'<text class="dag-sub" x="{x + 14:.1f}" y="{y + 34:.1f}">{escape(sub[:34])}</text>',
    ]
    if node.grouped:
        parts.append(_status_bar(node, x + 14, y + NODE_H - 5, NODE_W - 24))
    parts.append("</a>")
    return "".join(parts)


def _status_bar(node: _Node, x: float, y: float, width: float) -> str:
    counts = Counter(c["status"] for c in node.calls)
    parts, offset = [], x
    for status in sorted(counts, key=_rank):
        share = width * counts[status] / len(node.calls)
        parts.append(
            f'<rect class="dag-bar {status_class(status)}" x="{offset:.1f}" y="{y:.1f}" width="{share:.1f}" height="3"/>'
        )
        offset += share
    return "".join(parts)


def _rank(status: str) -> int:
    return _STATUS_ORDER.index(status) if status in _STATUS_ORDER else len(_STATUS_ORDER)
