"""The cluster launcher ``python -m kitaru.runtime.launch``: roles from Vertex's ``CLUSTER_SPEC`` and
SageMaker's ``resourceconfig.json``, and a real two-node Ray cluster formed by two launcher processes
on this machine (each node on its own ports), whose head runs the driver of a flow that needs the worker.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from kitaru.backends._standins._replicas import free_port, node_start_args, start_replica, stop_replica
from kitaru.errors import KitaruUsageError
from kitaru.runtime.launch import detect_role, from_cluster_spec, from_resourceconfig

TESTS = Path(__file__).resolve().parent
FLOWS = TESTS / "launch_flows.py"


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


def node_environments(fmt: str, tmp_path: Path) -> list[dict[str, str]]:
    """The environment of the head and of the worker, as Vertex or SageMaker would describe them."""
    port = free_port()
    if fmt == "vertex":
        pools = {"workerpool0": [f"127.0.0.1:{port}"], "workerpool1": ["127.0.0.1:0"]}
        return [{"CLUSTER_SPEC": cluster_spec("workerpool0", 0, pools)}, {"CLUSTER_SPEC": cluster_spec("workerpool1", 0, pools)}]
    nodes = []
    for host in ("algo-1", "algo-2"):
        path = tmp_path / host / "resourceconfig.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
        # algo-1 resolves only inside SageMaker's network: point the nodes at the head's loopback address.
        nodes.append(
            {"KITARU_RESOURCECONFIG": str(path), "KITARU_RAY_HEAD_ADDRESS": f"127.0.0.1:{port}", "KITARU_RAY_PORT": str(port)}
        )
    return nodes


@pytest.mark.ray
@pytest.mark.parametrize("fmt", ["vertex", "sagemaker"])
def test_two_launchers_form_a_two_node_cluster_and_run_the_driver(fmt, tmp_path):
    from kitaru import KitaruClient
    from kitaru.testing import isolated_home

    home = tmp_path / "home"
    exec_id = f"launch-{fmt}"
    base = {
        **os.environ,
        "KITARU_HOME": str(home),
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS.parent / "server")]),
        "KITARU_DRIVER_ARGS": json.dumps(
            ["run", f"{FLOWS}:two_nodes", "--exec-id", exec_id, "--input", json.dumps({"tag": fmt})]
        ),
    }
    base.pop("KITARU_RAY_ADDRESS", None)
    head_env, worker_env = node_environments(fmt, tmp_path)
    command = [sys.executable, "-m", "kitaru.runtime.launch", "--poll-interval", "0.5", "--join-timeout", "120"]
    head = start_replica(
        command,
        {**base, **head_env, "KITARU_RAY_START_ARGS": node_start_args(head=True)},
        cwd=tmp_path,
        log=tmp_path / "head.log",
    )
    worker_args = node_start_args(head=False, resources={"launch_worker": 1})
    worker = start_replica(
        command, {**base, **worker_env, "KITARU_RAY_START_ARGS": worker_args}, cwd=tmp_path, log=tmp_path / "worker.log"
    )
    try:
        head_status = head.wait(180)
        worker_status = worker.wait(60)
    finally:
        stop_replica(head, grace=1)
        stop_replica(worker, grace=1)
    logs = f"head:\n{(tmp_path / 'head.log').read_text()}\nworker:\n{(tmp_path / 'worker.log').read_text()}"
    assert (head_status, worker_status) == (0, 0), logs
    assert "2 nodes joined" in logs and "is gone; leaving" in logs
    with isolated_home(home):
        execution = KitaruClient().executions.get(exec_id)
        assert execution.status == "completed", logs
        result = execution.result()
    assert result["tag"] == fmt
    assert result["driver_node"] != result["checkpoint_node"]  # the checkpoint ran on the worker node


def test_ray_start_command_per_role():
    from kitaru.runtime.launch._nodes import ray_start_command

    pools = {"workerpool0": ["10.0.0.2:6380"], "workerpool1": ["10.0.0.3:6380"]}
    env = {"KITARU_RAY_START_ARGS": "--num-cpus 1", "KITARU_RAY_WORKER_START_ARGS": "--resources '{\"gpu_node\": 1}'"}
    head = ray_start_command(from_cluster_spec(cluster_spec("workerpool0", 0, pools)), env)
    worker = ray_start_command(from_cluster_spec(cluster_spec("workerpool1", 0, pools)), env)
    assert head[1:] == ["start", "--block", "--disable-usage-stats", "--head", "--port", "6380", "--dashboard-host", "0.0.0.0", "--num-cpus", "1"]
    assert worker[1:] == ["start", "--block", "--disable-usage-stats", "--address", "10.0.0.2:6380", "--num-cpus", "1", "--resources", '{"gpu_node": 1}']
