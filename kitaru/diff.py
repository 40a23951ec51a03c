"""``kitaru.diff``: call-by-call comparison of an execution with its replays (or any other execution).

Calls are matched by invocation id. For each: whether the statuses and the output
digests match, and how the durations and token counts differ.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kitaru.client import CheckpointCall, Execution, KitaruClient

__all__ = ["CheckpointDiff", "ExecutionDiff", "diff"]

_DISCOVERY_SCAN_LIMIT = 10_000


@dataclasses.dataclass(frozen=True)
class CheckpointDiff:
    """One invocation id in both executions (either side may be missing)."""

    name: str
    original_call_id: str | None
    replay_call_id: str | None
    status_match: bool
    duration_delta_ms: float | None
    token_delta: dict[str, int] | None
    artifact_hashes: dict[str, tuple[str | None, str | None]]
    cost_delta_usd: float | None = None

    @property
    def output_changed(self) -> bool:
        """Whether the outputs differ (by digest), or one side has none."""
        original, replay = self.artifact_hashes.get("output", (None, None))
        return original != replay


@dataclasses.dataclass(frozen=True)
class ExecutionDiff:
    """An original execution compared with each of ``compared``: ``[(exec_id, [CheckpointDiff, ...]), ...]``."""

    original_exec_id: str
    compared: list[tuple[str, list[CheckpointDiff]]] = dataclasses.field(default_factory=list)
    urls: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


def diff(original: str, *executions: str, client: KitaruClient | None = None) -> ExecutionDiff:
    """Compare execution ``original`` with ``executions`` (default: every replay of it).

    Raises:
        KitaruNotFoundError: an execution does not exist.
    """
    client = client or KitaruClient()
    base = client.executions.get(original)
    others = list(executions) or _replays_of(client, original)
    warnings = [] if others else [f"execution {original!r} has no replays; pass the executions to compare with."]
    compared = [(exec_id, _compare(base, client.executions.get(exec_id))) for exec_id in others]
    return ExecutionDiff(original_exec_id=original, compared=compared, warnings=warnings)


def _replays_of(client: KitaruClient, original: str) -> list[str]:
    rows = client.service.list_executions(limit=_DISCOVERY_SCAN_LIMIT)
    return [row["exec_id"] for row in reversed(rows) if row.get("original_exec_id") == original]


def _compare(original: Execution, other: Execution) -> list[CheckpointDiff]:
    left = {call.invocation_id: call for call in original.checkpoints}
    right = {call.invocation_id: call for call in other.checkpoints}
    order = list(left) + [key for key in right if key not in left]
    return [_call_diff(key, left.get(key), right.get(key)) for key in order]


def _call_diff(name: str, a: CheckpointCall | None, b: CheckpointCall | None) -> CheckpointDiff:
    return CheckpointDiff(
        name=name,
        original_call_id=a.call_id if a else None,
        replay_call_id=b.call_id if b else None,
        status_match=bool(a and b and _settled(a) == _settled(b)),
        duration_delta_ms=_delta(_duration_ms(a), _duration_ms(b)),
        token_delta=_token_delta(a, b),
        artifact_hashes={"output": (_digest(a), _digest(b))},
    )


def _settled(call: CheckpointCall) -> str:
    """Reused and served outputs count as completed: a replayed call matches the call it reused."""
    return "completed" if call.status in ("completed", "cached", "replayed", "overridden") else str(call.status)


def _duration_ms(call: CheckpointCall | None) -> float | None:
    if call is None or call.created_at is None or call.ended_at is None:
        return None
    return (call.ended_at - call.created_at).total_seconds() * 1000


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _digest(call: CheckpointCall | None) -> str | None:
    output = call.output if call else None
    return output.digest if output else None


def _tokens(call: CheckpointCall | None) -> dict[str, int]:
    totals: dict[str, int] = {}
    for record in call.llm_calls if call else []:
        for key in ("input_tokens", "output_tokens"):
            value: Any = record.get(key)
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    return totals


def _token_delta(a: CheckpointCall | None, b: CheckpointCall | None) -> dict[str, int] | None:
    left, right = _tokens(a), _tokens(b)
    if not left and not right:
        return None
    return {key: right.get(key, 0) - left.get(key, 0) for key in sorted(set(left) | set(right))}
