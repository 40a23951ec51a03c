"""``KitaruClient().executions.statistics()``: execution counts grouped by status, flow or stack (0.21's shape)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = ["ExecutionStatistics", "ExecutionStatisticsGroup", "execution_statistics"]

DIMENSIONS = ("status", "flow", "stack")
_MAX_EXECUTIONS = 100_000


@dataclasses.dataclass(frozen=True)
class ExecutionStatisticsGroup:
    """One group: its keys (``{"status": "completed"}``) and how many executions it holds."""

    keys: dict[str, Any]
    execution_count: int
    metrics: dict[str, float | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ExecutionStatistics:
    """Groups, largest first; ``truncated`` when more executions exist than were counted."""

    groups: list[ExecutionStatisticsGroup]
    truncated: bool


def execution_statistics(
    service: Any,
    *,
    group_by: Sequence[str] = (),
    flow: str | None = None,
    status: str | None = None,
    stack: str | None = None,
    metrics: Sequence[str] = (),
) -> ExecutionStatistics:
    """Count executions (of ``flow``, in ``status``, on ``stack``) per combination of ``group_by`` dimensions.

    ``metrics`` are ``"NAME:duration:avg|sum|min|max"`` (seconds from start to end).
    """
    dimensions = [str(getattr(d, "dimension", d)) for d in group_by]
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise KitaruUsageError(f"statistics cannot group by {unknown}; group by any of {list(DIMENSIONS)}.")
    wanted = [_metric(m) for m in metrics]
    rows = [r for r in service.list_executions(flow=flow, status=status, limit=_MAX_EXECUTIONS) if stack in (None, r["stack"])]
    counts = Counter(tuple(row[d] for d in dimensions) for row in rows)
    groups = []
    for key, count in counts.most_common():
        members = [row for row in rows if tuple(row[d] for d in dimensions) == key]
        values = {name: _aggregate(how, members) for name, how in wanted}
        groups.append(
            ExecutionStatisticsGroup(keys=dict(zip(dimensions, key, strict=True)), execution_count=count, metrics=values)
        )
    return ExecutionStatistics(groups=groups, truncated=len(rows) >= _MAX_EXECUTIONS)


_AGGREGATIONS = {"avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}


def _metric(spec: str) -> tuple[str, str]:
    name, _, rest = str(spec).partition(":")
    source, _, how = rest.partition(":")
    if source != "duration" or how not in _AGGREGATIONS:
        raise KitaruUsageError(f"metric {spec!r} is not supported; use NAME:duration:avg (or sum, min, max).")
    return name, how


def _aggregate(how: str, rows: list[dict[str, Any]]) -> float | None:
    durations = [r["ended_at"] - r["started_at"] for r in rows if r.get("ended_at") and r.get("started_at")]
    return _AGGREGATIONS[how](durations) if durations else None
