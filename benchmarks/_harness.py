"""What every case shares: options, result rows, timing, a fresh home, Ray's worker pool, the table and JSON.

A case is a module with ``NAME`` and ``run(options) -> CaseResult``. Each row
carries its own baseline (measured in the same run) and the ratio
``value / baseline``; whether a lower or a higher ratio is better is the
target's business (``ratio <= 1.5`` for overheads, ``ratio >= 0.7`` for
throughput).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import operator
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
_OPS: dict[str, Callable[[Any, Any], bool]] = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}


@dataclasses.dataclass(frozen=True)
class Options:
    """How a case should run: ``quick`` means small sizes for a smoke check."""

    quick: bool = False

    def pick(self, full: Any, quick: Any) -> Any:
        """The size for this mode."""
        return quick if self.quick else full


@dataclasses.dataclass(frozen=True)
class Target:
    """A goal from SPEC §10 on a row's ``value`` or ``ratio``, e.g. ``Target("ratio", "<=", 1.5)``."""

    on: str
    op: str
    bound: float | bool
    unit: str = ""

    def met(self, value: Any, ratio: float | None) -> bool:
        subject = ratio if self.on == "ratio" else value
        return subject is not None and _OPS[self.op](subject, self.bound)

    def __str__(self) -> str:
        bound = str(self.bound).lower() if isinstance(self.bound, bool) else f"{self.bound:g}"
        unit = "x" if self.on == "ratio" else (f" {self.unit}" if self.unit else "")
        return f"{self.on} {self.op} {bound}{unit}"


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured metric next to its baseline and target."""

    case: str
    metric: str
    value: float | bool
    unit: str
    baseline: float | None
    target: Target

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or isinstance(self.value, bool):
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool:
        return self.target.met(self.value, self.ratio)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "target": str(self.target),
            "met": self.met,
        }


@dataclasses.dataclass
class CaseResult:
    """A case's rows plus whatever else is worth keeping (sizes, every sample)."""

    case: str
    rows: list[Row]
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self, options: Options) -> dict[str, Any]:
        return {"case": self.case, "quick": options.quick, "rows": [r.to_dict() for r in self.rows], "details": self.details}


# --- timing ---------------------------------------------------------------------------------------


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """``(seconds, result)`` of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def last_json_line(stdout: str) -> Any:
    """The last JSON object a subprocess printed (Ray may copy its workers' output lines after it)."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in the output:\n{stdout[-2000:]}")


def median(samples: list[float]) -> float:
    return statistics.median(samples)


# --- environment ----------------------------------------------------------------------------------


def start_ray() -> str:
    """Start the one local Ray session every case shares; returns its GCS address.

    Kitaru's ``ensure_ray`` reuses an initialised Ray. Token auth is off so the
    resume case's subprocess driver can join without fetching a token. Ray kills
    idle workers beyond ``num_cpus`` after a second; keeping up to 32 lets the
    fan-out cases measure warm workers (see :func:`warm_worker_pool`).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_num_workers_soft_limit", "32")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    return ray.get_runtime_context().gcs_address


@contextlib.contextmanager
def fresh_home(**settings: Any) -> Iterator[Path]:
    """A temporary ``KITARU_HOME`` (database and storage) with the cache off, removed afterwards.

    A warm local Ray that a run started for this home is stopped with it, rather than idling on
    for a home that no longer exists.
    """
    from kitaru.runtime import warm
    from kitaru.testing import isolated_home

    with (
        tempfile.TemporaryDirectory(prefix="kitaru-bench-") as tmp,
        isolated_home(Path(tmp, "home"), cache=False, **settings) as home,
    ):
        try:
            yield home
        finally:
            warm.stop(home)


def warm_worker_pool(size: int, num_cpus: float) -> None:
    """Start ``size`` Ray workers at once and import Kitaru's task code in each.

    Ray starts workers lazily (about a second each on two cores), so without this
    a fan-out would measure process start-up for Kitaru and bare Ray alike. A
    barrier actor holds every task until all ``size`` are running, which forces
    ``size`` distinct workers.
    """
    barrier = _Barrier.remote(size)
    ray.get([_arrive.options(num_cpus=num_cpus).remote(barrier) for _ in range(size)])
    ray.kill(barrier)


@ray.remote(num_cpus=0)
class _Barrier:
    def __init__(self, size: int) -> None:
        self._size = size
        self._arrived = 0
        self._all_here = asyncio.Event()

    async def arrive(self) -> None:
        self._arrived += 1
        if self._arrived >= self._size:
            self._all_here.set()
        await self._all_here.wait()


@ray.remote(max_retries=0)
def _arrive(barrier: Any) -> None:
    import kitaru.runtime._attempt  # noqa: F401 - what a checkpoint task imports first

    ray.get(barrier.arrive.remote())


# --- output ---------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


_HEADER = ("case", "metric", "value", "unit", "baseline", "ratio", "target", "met")
_NUMERIC_COLUMNS = (2, 4, 5)


def print_table(rows: list[Row]) -> None:
    """Print the rows with ``rich`` when it is installed, else as aligned plain text."""
    cells = [
        [r.case, r.metric, fmt(r.value), r.unit, fmt(r.baseline), fmt(r.ratio), str(r.target), "yes" if r.met else "NO"]
        for r in rows
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _print_plain([list(_HEADER), *cells])
        return
    table = Table(*_HEADER, title="Kitaru benchmarks (SPEC §10)")
    for column in _NUMERIC_COLUMNS:
        table.columns[column].justify = "right"
    for line in cells:
        table.add_row(*line)
    # Off a terminal (CI logs, a pipe) rich would wrap at 80 columns.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _print_plain(lines: list[list[str]]) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    lines.insert(1, ["-" * w for w in widths])
    for line in lines:
        cells = [
            cell.rjust(w) if i in _NUMERIC_COLUMNS else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
