"""A Ray cluster dies mid-flow: the execution is interrupted, and resumes on a new cluster.

Ray jobs die with their cluster; Kitaru's records survive (here the embedded database of
the test's ``KITARU_HOME``). Each cluster is a head node started for this test in its own
process group; the first one is killed (SIGKILL to every node's group) as its machines would.
"""

from __future__ import annotations

import pytest

from kitaru import KitaruClient
from kitaru.backends.local_cluster import LocalRayCluster
from kitaru.testing import wait_for
from tests.integration import ray_flows

STEPS = 5


def counts(directory) -> dict[str, int]:
    return {path.name: len(path.read_text().splitlines()) for path in sorted(directory.iterdir())}


def use_cluster(cluster: LocalRayCluster) -> None:
    KitaruClient().stacks.create(
        "prod", backend="ray", backend_options={"address": cluster.dashboard_url, "auto_resume": True}, replace=True
    )


@pytest.mark.ray
def test_a_dead_cluster_interrupts_and_resume_all_resubmits_to_a_new_one(kitaru_home, tmp_path):
    counters = tmp_path / "counters"
    counters.mkdir()
    gate = tmp_path / "gate"
    first = LocalRayCluster(num_cpus=1).start()
    try:
        use_cluster(first)
        handle = ray_flows.chain.run(str(counters), str(gate), steps=STEPS, hold_at=3, stack="prod")
        wait_for(lambda: (counters / "step_3").exists(), timeout=120, message="the held call started")
        statuses = [call.status for call in KitaruClient().executions.get(handle.exec_id).checkpoints]
        assert statuses[:3] == ["completed"] * 3
    finally:
        first.kill()  # every node at once, mid-call
        first.stop()
    wait_for(lambda: handle.status == "interrupted", timeout=30, message="interrupted")

    with LocalRayCluster(num_cpus=1) as second:
        use_cluster(second)
        gate.touch()
        resumed = KitaruClient().executions.resume_all()  # the stack says auto_resume
        assert [h.exec_id for h in resumed] == [handle.exec_id]
        assert handle.wait(timeout=180) == STEPS  # the fault-free result
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.dashboard_url.startswith(second.dashboard_url)

    # committed calls ran once; only the call in flight when the cluster died ran again
    assert counts(counters) == {"step_0": 1, "step_1": 1, "step_2": 1, "step_3": 2, "step_4": 1}


def test_resume_all_leaves_a_remote_stack_without_auto_resume_alone(kitaru_home):
    """No cluster needed: an interrupted record on a ray stack without auto_resume is not re-submitted."""
    client = KitaruClient()
    client.stacks.create("manual", backend="ray", backend_options={"address": "http://127.0.0.1:9"})
    client.stacks.create("auto", backend="ray", backend_options={"address": "http://127.0.0.1:9", "auto_resume": True})
    for exec_id, stack in (("on-manual", "manual"), ("on-auto", "auto")):
        client.service.create_execution(
            {
                "exec_id": exec_id,
                "flow": "chain",
                "flow_ref": "tests.integration.ray_flows:chain",
                "stack": stack,
                "settings": {},
                "inputs": {},
                "driver_id": "gone",
                "lease_expires_at": 0.0,
            }
        )
    assert client.executions.resumable_ids() == ["on-auto"]
