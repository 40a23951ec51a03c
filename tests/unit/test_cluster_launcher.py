"""The cluster launcher ``python -m kitaru.runtime.launch``: roles from Vertex's ``CLUSTER_SPEC`` and
SageMaker's ``resourceconfig.json``, and the ``ray start`` command of each role.

The real two-node Ray clusters that two launcher processes form from each format, whose head runs
the driver of a flow that needs the worker node, are in ``test_vertex.py`` and ``test_sagemaker.py``
(each backend's stand-in starts the launchers as the platform would).
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from kitaru.errors import KitaruUsageError
from kitaru.runtime.launch import detect_role, from_cluster_spec, from_resourceconfig


def cluster_spec(kind: str, index: int, pools: dict[str, list[str]]) -> str:
    return json.dumps({"cluster": pools, "task": {"type": kind, "index": index}, "environment": "cloud"})


def test_cluster_spec_roles():
    pools = {"workerpool0": ["head-0:2222"], "workerpool1": ["w-0:2222", "w-1:2222"]}
    head = from_cluster_spec(cluster_spec("workerpool0", 0, pools))
    assert (head.is_head, head.head_address, head.node_count, head.platform) == (True, "head-0:2222", 3, "vertex")
    worker = from_cluster_spec(cluster_spec("workerpool1", 1, pools))
    assert (worker.is_head, worker.name, worker.head_address) == (False, "workerpool1-1", "head-0:2222")
    assert from_cluster_spec(cluster_spec("workerpool0", 0, {"workerpool0": ["h"]})).head_address == "h:6379"


def test_resourceconfig_roles():
    data = {"current_host": "algo-1", "hosts": ["algo-2", "algo-1"], "network_interface_name": "eth0"}
    head = from_resourceconfig(data)
    assert (head.is_head, head.head_address, head.node_count, head.platform) == (True, "algo-1:6379", 2, "sagemaker")
    worker = from_resourceconfig({**data, "current_host": "algo-2"}, port=7000)
    assert (worker.is_head, worker.head_address) == (False, "algo-1:7000")


def test_detect_role_sources(tmp_path):
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    role = detect_role({"KITARU_RAY_PORT": "7001"}, resourceconfig=config)
    assert (role.platform, role.is_head, role.head_address) == ("sagemaker", False, "algo-1:7001")
    override = detect_role({"KITARU_RESOURCECONFIG": str(config), "KITARU_RAY_HEAD_ADDRESS": "127.0.0.1:9"})
    assert override.head_address == "127.0.0.1:9"
    spec = cluster_spec("workerpool0", 0, {"workerpool0": ["h:1"]})
    assert detect_role({"CLUSTER_SPEC": spec}, resourceconfig=config).platform == "vertex"  # CLUSTER_SPEC wins


@pytest.mark.parametrize(
    "environ",
    [{"KITARU_RESOURCECONFIG": "/nonexistent/resourceconfig.json"}, {"CLUSTER_SPEC": "{}"}, {"CLUSTER_SPEC": "not json"}],
)
def test_missing_or_malformed_description_is_one_clear_line(environ):
    with pytest.raises(KitaruUsageError) as info:
        detect_role(environ)
    assert "\n" not in str(info.value)


def test_launcher_without_a_description_exits_2(tmp_path):
    import subprocess

    env = {**os.environ, "KITARU_RESOURCECONFIG": str(tmp_path / "missing.json")}
    env.pop("CLUSTER_SPEC", None)
    done = subprocess.run([sys.executable, "-m", "kitaru.runtime.launch"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: no cluster description")


def test_ray_start_command_per_role():
    from kitaru.runtime.launch._nodes import ray_start_command

    pools = {"workerpool0": ["10.0.0.2:6380"], "workerpool1": ["10.0.0.3:6380"]}
    env = {"KITARU_RAY_START_ARGS": "--num-cpus 1", "KITARU_RAY_WORKER_START_ARGS": "--resources '{\"gpu_node\": 1}'"}
    head = ray_start_command(from_cluster_spec(cluster_spec("workerpool0", 0, pools)), env)
    worker = ray_start_command(from_cluster_spec(cluster_spec("workerpool1", 0, pools)), env)
    assert head[1:] == [
        "start",
        "--block",
        "--disable-usage-stats",
        "--head",
        "--port",
        "6380",
        "--dashboard-host",
        "0.0.0.0",
        "--num-cpus",
        "1",
    ]
    assert worker[1:] == [
        "start",
        "--block",
        "--disable-usage-stats",
        "--address",
        "10.0.0.2:6380",
        "--num-cpus",
        "1",
        "--resources",
        '{"gpu_node": 1}',
    ]


def test_head_runs_the_driver_with_the_cluster_address_and_stops_its_node(monkeypatch):
    """The head's part without Ray: the node is faked, the driver (``python -m kitaru.runtime``) is real."""
    from kitaru.runtime.launch import _main

    class Node:
        pid, returncode = -1, None

        def poll(self):
            return None

    stopped = []
    monkeypatch.setattr(_main, "start_node", lambda role, environ: Node())
    monkeypatch.setattr(_main, "reachable", lambda address: True)
    monkeypatch.setattr(_main, "_wait_for_nodes", lambda role, node, timeout: None)
    monkeypatch.setattr(_main, "stop_group", stopped.append)
    role = from_cluster_spec(cluster_spec("workerpool0", 0, {"workerpool0": ["127.0.0.1:6390"]}))
    assert _main._run_head(role, ["--help"], dict(os.environ), join_timeout=5) == 0
    assert _main._run_head(role, ["retry"], dict(os.environ), join_timeout=5) == 2  # the driver's own usage error
    assert len(stopped) == 2  # the Ray node is stopped whatever the driver did
