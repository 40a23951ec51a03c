"""Small formatting helpers shared by the UI's templates: times, durations, sizes and status classes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

__all__ = ["ACTIVE", "TERMINAL", "duration", "iso", "json_pretty", "size", "status_class", "timestamp"]

TERMINAL = ("completed", "failed", "cancelled")
ACTIVE = ("pending", "running", "waiting")  # still changing: the pages refresh themselves
_GOOD = {"completed", "cached", "replayed"}


def timestamp(value: float | None) -> str:
    """``2026-11-26 16:07:14 UTC`` (the browser rewrites it in local time), or an em dash."""
    if value is None:
        return "—"
    return dt.datetime.fromtimestamp(value, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: float | None) -> str:
    """ISO 8601 in UTC, for ``<time datetime=...>``."""
    return "" if value is None else dt.datetime.fromtimestamp(value, tz=dt.UTC).isoformat()


def duration(start: float | None, end: float | None, *, now: float | None = None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 m 05 s``, ``2 h 03 m``; running (no end) counts up to ``now``."""
    if start is None:
        return "—"
    if end is None:
        if now is None:
            return "—"
        end = now
    seconds = max(end - start, 0.0)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def size(value: int | None) -> str:
    """Bytes as ``812 B``, ``4.2 KiB``, ``1.5 MiB``..."""
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def status_class(status: str | None) -> str:
    """The CSS class of a status badge (``st-completed``, ``st-failed``...)."""
    return f"st-{status or 'unknown'}"


def json_pretty(value: Any, *, limit: int = 20_000) -> str:
    """Indented JSON (non-JSON values by ``repr``), cut at ``limit`` characters."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def is_good(status: str) -> bool:
    return status in _GOOD
