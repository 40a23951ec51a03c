"""The backend extras resolve with the project's constraints: ``kitaru[kuberay,s3]`` (a ``kubernetes`` that accepts
the ``python-dateutil`` 2.x botocore needs), ``[sagemaker,s3]``, ``[vertex]`` and every backend together.

Needs the package registry (pip's index); the resolution is real (``pip install --dry-run`` into a clean
environment), nothing is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# One resolution of every backend beside s3 and the server: a solution of the whole set is one of each subset
# (kuberay+s3, sagemaker+s3, vertex), at a fraction of the time of resolving each.
COMBINATIONS = [("kuberay", "vertex", "sagemaker", "s3", "server")]


def requirements(extras: tuple[str, ...]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + [req for extra in extras for req in project["optional-dependencies"][extra]]


@pytest.mark.timeout(600)
def test_backend_extras_resolve_with_the_constraints(tmp_path):
    runs = {}
    for extras in COMBINATIONS:
        report = tmp_path / f"{'-'.join(extras)}.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--disable-pip-version-check", "-c", str(ROOT / "constraints.txt"), "--report", str(report),
                   *requirements(extras)]  # fmt: skip
        runs[extras] = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), report)
    for extras, (process, report) in runs.items():
        _, stderr = process.communicate(timeout=540)
        errors = [line for line in stderr.splitlines() if "ERROR" in line or "conflict" in line.lower()]
        assert process.returncode == 0, f"kitaru[{','.join(extras)}] does not resolve: {errors or stderr[-2000:]}"
        resolved = {
            item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.loads(report.read_text())["install"]
        }
        if "kuberay" in extras:
            assert int(resolved["kubernetes"].split(".")[0]) < 37, resolved["kubernetes"]
        if "s3" in extras or "sagemaker" in extras:
            assert resolved["python-dateutil"].startswith("2."), resolved["python-dateutil"]
        if "vertex" in extras:
            assert "google-cloud-aiplatform" in resolved and "google-cloud-secret-manager" in resolved
