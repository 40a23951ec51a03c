"""Every storage extra resolves with the project's constraints, alone and together.

Needs the package registry (pip's index); the resolution is real, nothing is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each extra alone beside the core's storage requirements; all three together beside every core requirement
# (a superset, so it also proves each full ``kitaru[extra]`` resolves; the full set costs ~12 s of resolving).
STORAGE_EXTRAS = [("s3",), ("gcs",), ("azure",), ("s3", "gcs", "azure")]
CORE_STORAGE = ("fsspec", "blake3")
STACK = {"fsspec", "s3fs", "gcsfs", "adlfs", "aiobotocore", "botocore", "boto3", "azure-storage-blob", "blake3"}


def _requirements(extras: tuple[str, ...]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    if len(extras) == 1:
        core = [req for req in core if req.startswith(CORE_STORAGE)]
    return core + [req for extra in extras for req in project["optional-dependencies"][extra]]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


@pytest.mark.registry
def test_each_storage_extra_resolves_with_the_constraints(tmp_path):
    """``pip install --dry-run`` of kitaru's requirements plus each extra, in a clean environment (resolved in parallel)."""
    runs = {}
    for extras in STORAGE_EXTRAS:
        report = tmp_path / f"{'-'.join(extras)}.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--disable-pip-version-check", "-c", str(ROOT / "constraints.txt"), "--report", str(report),
                   *_requirements(extras)]  # fmt: skip
        runs[extras] = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), report)
    pins = _constraints()
    for extras, (process, report) in runs.items():
        _, stderr = process.communicate(timeout=240)
        errors = [line for line in stderr.splitlines() if "ERROR" in line or "conflict" in line.lower()]
        assert process.returncode == 0, f"kitaru[{','.join(extras)}] does not resolve: {errors or stderr[-2000:]}"
        resolved = {
            item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.loads(report.read_text())["install"]
        }
        for name in STACK & resolved.keys():
            assert resolved[name] == pins[name], (
                f"kitaru[{','.join(extras)}] resolved {name} {resolved[name]}, pinned {pins[name]}"
            )
        assert "fsspec" in resolved and "blake3" in resolved
