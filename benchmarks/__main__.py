"""``python -m benchmarks [--quick] [--only CASE ...]``: run the cases, print the table, write the JSON."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from typing import Any

from benchmarks import CASES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Kitaru performance benchmarks (SPEC §10).")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check that runs in well under a minute")
    parser.add_argument(
        "--only", nargs="+", choices=list(CASES), metavar="CASE", help=f"run only these cases ({', '.join(CASES)})"
    )
    args = parser.parse_args(argv)

    # Imported only now so that --help stays instant: the harness imports Ray.
    from benchmarks._harness import RESULTS_DIR, Options, Row, print_table, start_ray, write_json

    options = Options(quick=args.quick)
    started = time.perf_counter()
    gcs_address = start_ray()
    print(f"Ray session at {gcs_address}, started in {time.perf_counter() - started:.1f} s", flush=True)
    summary: dict[str, Any] = {"quick": options.quick, "environment": _environment(), "cases": {}, "rows": []}
    rows: list[Row] = []
    failed: list[str] = []
    for name in args.only or list(CASES):
        print(f"\n== {name}", flush=True)
        case_started = time.perf_counter()
        try:
            result = importlib.import_module(f"benchmarks.{CASES[name]}").run(options)
        except Exception:  # noqa: BLE001 - one broken case must not hide the others' results
            error = traceback.format_exc()
            print(error, file=sys.stderr, flush=True)
            data: dict[str, Any] = {"case": name, "quick": options.quick, "rows": [], "error": error}
            failed.append(name)
        else:
            data = result.to_dict(options)
            rows += result.rows
            print_table(result.rows)
        data["seconds"] = round(time.perf_counter() - case_started, 2)
        write_json(RESULTS_DIR / f"{name}.json", data)
        summary["cases"][name] = data
        summary["rows"] += data["rows"]
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["environment"]["load_average_at_end"] = os.getloadavg()
    write_json(RESULTS_DIR / "summary.json", summary)

    load = ", ".join(f"{x:.1f}" for x in summary["environment"]["load_average_at_start"])
    sizes = "quick sizes" if options.quick else "full sizes"
    print(f"\n== all cases ({sizes}, {summary['seconds']:.0f} s, load average at start {load}); JSON in {RESULTS_DIR}")
    print_table(rows)
    if failed:
        print(f"cases that raised: {', '.join(failed)} (tracebacks above and in their JSON)", file=sys.stderr)
    return 1 if failed else 0


def _environment() -> dict[str, Any]:
    import ray

    return {
        "python": platform.python_version(),
        "ray": ray.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


if __name__ == "__main__":
    sys.exit(main())
