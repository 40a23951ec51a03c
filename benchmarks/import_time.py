"""``import``: what ``import kitaru`` costs a fresh interpreter.

Times ``python -c "import kitaru"`` in a subprocess (median of 5) against
``python -c pass`` (the interpreter's own start-up), interleaved. Target (SPEC §10):
at most 0.3 s wall. A separate subprocess checks that the import pulled in no
Ray (nor the server, FastAPI or a cloud SDK: listed in the JSON).
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks._harness import REPO_ROOT, CaseResult, Options, Row, Target, median, timed

NAME = "import"
HEAVY_MODULES = ("ray", "kitaru_server", "sqlalchemy", "fastapi", "boto3", "s3fs", "gcsfs", "adlfs", "pyarrow", "numpy")
_LIST_HEAVY = f"import json, sys, kitaru; print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)


def run(options: Options) -> CaseResult:
    repetitions = options.pick(5, 3)
    _python("import kitaru")  # warm-up: the file system cache
    samples: dict[str, list[float]] = {"import kitaru": [], "pass": []}
    for _ in range(repetitions):
        samples["import kitaru"].append(timed(_python, "import kitaru")[0])
        samples["pass"].append(timed(_python, "pass")[0])
    heavy = json.loads(_python(_LIST_HEAVY).stdout)
    rows = [
        Row(
            NAME,
            'python -c "import kitaru", wall',
            median(samples["import kitaru"]),
            "s",
            median(samples["pass"]),
            Target("value", "<=", 0.3, "s"),
        ),
        Row(NAME, "ray imported by import kitaru", "ray" in heavy, "", None, Target("value", "==", False)),
    ]
    details = {"repetitions": repetitions, "baseline": 'python -c "pass"', "samples_s": samples, "heavy_modules_imported": heavy}
    return CaseResult(NAME, rows, details)
