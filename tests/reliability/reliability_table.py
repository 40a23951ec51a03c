"""Print the reliability suite's figures as a table: crash trials (from pytest's JUnit XML) and storage faults.

Usage: ``python tests/reliability/reliability_table.py JUNIT_XML RELIABILITY_JSONL``
"""

from __future__ import annotations

import collections
import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def crash_rows(junit: Path) -> list[tuple[str, int, int, int]]:
    """(kind, trials, passed, failed) per crash kind: driver, worker, runtime actor."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for case in ElementTree.parse(junit).iter("testcase"):
        name = case.get("name", "")
        if name.startswith("test_driver_crash_then_resume"):
            kind = "driver"
        elif match := re.match(r"test_worker_or_actor_crash\[(\w+)-", name):
            kind = {"actor": "runtime actor"}.get(match.group(1), match.group(1))
        else:
            continue
        outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else "passed"
        if case.find("skipped") is None:
            counts[kind]["trials"] += 1
            counts[kind][outcome] += 1
    return [(kind, c["trials"], c["passed"], c["failed"]) for kind, c in sorted(counts.items())]


def main() -> None:
    junit, figures = Path(sys.argv[1]), Path(sys.argv[2])
    print(f"{'crash injection':<24}{'trials':>8}{'passed':>8}{'failed':>8}")
    for kind, trials, passed, failed in crash_rows(junit):
        print(f"{'SIGKILL ' + kind:<24}{trials:>8}{passed:>8}{failed:>8}")
    if not figures.exists():
        return
    rows = [json.loads(line) for line in figures.read_text().splitlines() if line.strip()]
    columns = ["trials", "completed", "failed cleanly", "lost", "partial or corrupt objects", "requests",
               "fault: error", "fault: drop", "fault: timeout", "fault: slow", "seconds"]  # fmt: skip
    print()
    widths = [max(len(column) + 2, 10) for column in columns]
    print(f"{'storage faults':<22}" + "".join(f"{column:>{width}}" for column, width in zip(columns, widths, strict=True)))
    for row in rows:
        print(f"{row['suite']:<22}" + "".join(f"{row.get(c, 0)!s:>{w}}" for c, w in zip(columns, widths, strict=True)))


if __name__ == "__main__":
    main()
