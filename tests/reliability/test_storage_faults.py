"""Storage faults: flows on S3 (moto) behind a fault-injecting proxy (errors, timeouts, dropped connections, slow answers).

Every flow either completes with the fault-free result (through retries) or fails cleanly with the storage
error named; afterwards, checked straight on the emulator (not through the proxy): every committed output
exists and every object is whole (its BLAKE3 digest matches its name). The figures of each rate are printed
and appended to ``tests/artifacts/reliability.jsonl`` (``make reliability`` prints them as a table).
``--fault-trials`` flows run per rate (a small sample by default; ``make reliability`` runs hundreds).

The node's runtime actor, which writes the outputs, is also SIGKILLed while its PUTs are held by the
proxy: Ray restarts it and replays the writes, and no call runs twice. Held PUTs also show that a
checkpoint's task frees its CPU slot before its output is stored, and that its timeout does not count
the storing.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
import uuid
from pathlib import Path

import blake3
import numpy as np
import pytest

from kitaru import KitaruClient, checkpoint, flow
from kitaru.errors import KitaruError
from kitaru.storage import Storage, load_value
from kitaru.testing import count_calls, kill_process, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.crash]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.mark.parametrize("rate", [0.05, 0.20], ids=["5%", "20%"])
def test_flows_under_storage_faults(rate, request, s3_emulator, ray_session, kitaru_home, tmp_path, monkeypatch):
    from crash_flows import EXPECTED, fanout
    from fault_proxy import FAULTS, FaultProxy

    trials = request.config.getoption("--fault-trials")
    port = int(s3_emulator.endpoint.rsplit(":", 1)[1])
    prefix = f"s3://kitaru/faults-{uuid.uuid4().hex[:8]}"
    direct = Storage(prefix, s3_emulator.options)
    figures: collections.Counter[str] = collections.Counter()
    client = KitaruClient()
    started = time.monotonic()
    with FaultProxy(port, {fault: rate / len(FAULTS) for fault in FAULTS}, hang_seconds=1.0, seed=int(rate * 100)) as proxy:
        retries = {"max_attempts": 10, "mode": "standard"}
        options = {**s3_emulator.options, "endpoint_url": proxy.url, "config_kwargs": {"read_timeout": 0.5, "retries": retries}}
        client.stacks.create("faulty", storage_url=prefix, storage_options=options)
        monkeypatch.setenv("KITARU_STACK", "faulty")
        for trial in range(trials):
            counter_dir = tmp_path / f"counters-{trial}"
            counter_dir.mkdir()
            figures["trials"] += 1
            exec_id = None
            try:
                handle = fanout.run(str(counter_dir), 8, -1, -1, cache=False)
                exec_id = handle.exec_id
                assert handle.wait(timeout=180) == EXPECTED["fanout"]()
                figures["completed"] += 1
            except KitaruError as exc:
                assert "storage" in str(exc), f"a failure that does not name the storage error: {exc}"
                figures["failed cleanly"] += 1
            if exec_id is not None:
                figures["lost"] += _missing_outputs(direct, client.executions.get(exec_id))
        figures.update({f"fault: {fault}": proxy.counts[fault] for fault in FAULTS})
        figures["requests"] = proxy.counts["requests"]
    figures["partial or corrupt objects"] = _corrupt_objects(direct)
    figures["seconds"] = round(time.monotonic() - started, 1)
    _report(f"storage faults {rate:.0%}", figures)
    assert figures["lost"] == 0 and figures["partial or corrupt objects"] == 0
    assert figures["completed"] + figures["failed cleanly"] == trials


def _missing_outputs(storage: Storage, execution) -> int:
    """Committed outputs that storage does not hold (must be none)."""
    return sum(1 for call in execution.checkpoints if call.status == "completed" and not storage.exists(call.output.uri))


def _corrupt_objects(storage: Storage) -> int:
    corrupt = 0
    for digest in storage.list_objects():
        path = storage.object_path(digest)
        corrupt += blake3.blake3(storage.fs.cat_file(path)).hexdigest() != digest
    return corrupt


def _report(name: str, figures: dict[str, int | float]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "reliability.jsonl").open("a") as handle:
        handle.write(json.dumps({"suite": name, **figures}) + "\n")
    print(f"\n{name}: " + ", ".join(f"{key} {value}" for key, value in figures.items()))


def test_a_flow_whose_storage_is_missing_fails_in_one_clear_line(s3_emulator, ray_session, kitaru_home, tmp_path, monkeypatch):
    """A bucket that does not exist: the run is refused naming the storage, and no execution is left half-written."""
    from crash_flows import fanout

    client = KitaruClient()
    client.stacks.create("nowhere", storage_url="s3://no-such-bucket-kitaru/flows", storage_options=s3_emulator.options)
    monkeypatch.setenv("KITARU_STACK", "nowhere")
    before = {e.exec_id for e in client.executions.list()}
    with pytest.raises(KitaruError, match=r"could not write to storage 's3://no-such-bucket-kitaru/flows'") as refused:
        fanout.run(str(tmp_path), 2, -1, -1, cache=False).wait(timeout=60)
    assert "\n" not in str(refused.value)
    left = [e for e in client.executions.list() if e.exec_id not in before]
    assert all(e.status == "failed" for e in left), f"half-written executions: {[(e.exec_id, e.status) for e in left]}"


# --- the runtime actor killed mid-write ----------------------------------------------------------

LEAF_ITEMS = 128 * 1024  # 1 MiB of float64: left in the object store for the actor to write


@checkpoint
def big_leaf(counter_dir: str, index: int, go: str):
    """Counts its run, waits for the file ``go``, then returns a large array."""
    count_calls(counter_dir, f"leaf_{index}")
    while not os.path.exists(go):
        time.sleep(0.02)
    return np.full(LEAF_ITEMS, float(index))


@checkpoint
def total(counter_dir: str, arrays: list) -> float:
    count_calls(counter_dir, "total")
    return float(sum(array.sum() for array in arrays))


@flow
def wide(counter_dir: str, width: int, go: str) -> float:
    return total(counter_dir, [big_leaf.submit(counter_dir, index, go) for index in range(width)])


def test_runtime_actor_killed_mid_write(s3_emulator, ray_session, kitaru_home, tmp_path, monkeypatch):
    """SIGKILL the runtime actor while the PUTs of its outputs are held; Ray restarts it and its writes are replayed.

    The flow completes with the fault-free result, every call ran once, storage holds no partial object
    and every committed output exists (checked on the emulator, not through the proxy).
    """
    import ray
    from fault_proxy import FaultProxy

    from kitaru.runtime._ray import runtime_actor

    width = 4
    port = int(s3_emulator.endpoint.rsplit(":", 1)[1])
    prefix = f"s3://kitaru/actor-kill-{uuid.uuid4().hex[:8]}"
    direct = Storage(prefix, s3_emulator.options)
    counter_dir, go = tmp_path / "counters", tmp_path / "go"
    counter_dir.mkdir()
    client = KitaruClient()
    with FaultProxy(port, {}) as proxy:
        client.stacks.create("gated", storage_url=prefix, storage_options={**s3_emulator.options, "endpoint_url": proxy.url})
        monkeypatch.setenv("KITARU_STACK", "gated")
        handle = wide.run(str(counter_dir), width, str(go), cache=False)  # its inputs are stored before the gate closes
        proxy.hold_puts()
        go.touch()
        try:
            wait_for(lambda: proxy.held == width, timeout=60, message="every output's PUT held")
            assert handle.status == "running"
            assert all(call.status != "completed" for call in client.executions.get(handle.exec_id).checkpoints)
            pid = ray.get(runtime_actor().pid.remote())
            kill_process(pid)
        finally:
            proxy.release_puts()
        assert handle.wait(timeout=120) == float(sum(index * LEAF_ITEMS for index in range(width)))
    assert wait_for(lambda: ray.get(runtime_actor().pid.remote()), timeout=30) != pid, "the actor was not restarted"
    assert counters(counter_dir) == {**{f"leaf_{index}": 1 for index in range(width)}, "total": 1}
    execution = client.executions.get(handle.exec_id)
    assert [call.status for call in execution.checkpoints] == ["completed"] * (width + 1)
    assert _missing_outputs(direct, execution) == 0 and _corrupt_objects(direct) == 0
    for call in execution.checkpoints:
        if call.name == "big_leaf":
            index = 0 if call.invocation_id == "big_leaf" else int(call.invocation_id.rsplit("_", 1)[1]) - 1
            np.testing.assert_array_equal(load_value(direct, dataclasses.asdict(call.output)), np.full(LEAF_ITEMS, float(index)))


def counters(directory: Path) -> dict[str, int]:
    return {path.name: len(path.read_text().splitlines()) for path in directory.iterdir()}


TIMEOUT = 3.0


@checkpoint(timeout=TIMEOUT)
def quick_leaf(go: str, value: float):
    """Ends well within its timeout (once ``go`` exists); storing its output takes longer."""
    while not os.path.exists(go):
        time.sleep(0.02)
    return np.full(LEAF_ITEMS, value)


@flow
def quick(go: str, value: float) -> float:
    return float(quick_leaf(go, value).sum())


def test_a_write_slower_than_the_checkpoint_timeout_does_not_fail_the_call(
    s3_emulator, ray_session, kitaru_home, tmp_path, monkeypatch
):
    """The timeout bounds the checkpoint's task: the task ended in time, so the output the actor stores later counts.

    (Failing the attempt at the timeout would fail the execution while the actor goes on to commit the call completed.)
    """
    from fault_proxy import FaultProxy

    port = int(s3_emulator.endpoint.rsplit(":", 1)[1])
    prefix = f"s3://kitaru/slow-write-{uuid.uuid4().hex[:8]}"
    go = tmp_path / "go"
    client = KitaruClient()
    with FaultProxy(port, {}) as proxy:
        client.stacks.create("gated", storage_url=prefix, storage_options={**s3_emulator.options, "endpoint_url": proxy.url})
        monkeypatch.setenv("KITARU_STACK", "gated")
        (tmp_path / "warm").touch()
        assert quick.run(str(tmp_path / "warm"), 2.0, cache=False).wait(timeout=60) == 2.0 * LEAF_ITEMS  # a warm worker
        handle = quick.run(str(go), 3.0, cache=False)  # another value: its object is not stored yet
        proxy.hold_puts()
        go.touch()
        try:
            wait_for(lambda: proxy.held == 1, timeout=60, message="the output's PUT held")
            held_at = time.monotonic()
            # not a timed assertion: the write is held until the checkpoint's timeout has passed
            wait_for(lambda: time.monotonic() > held_at + TIMEOUT + 0.5, timeout=10, message="the checkpoint's timeout passed")
            assert handle.status == "running"
        finally:
            proxy.release_puts()
        assert handle.wait(timeout=60) == 3.0 * LEAF_ITEMS
    call = client.executions.get(handle.exec_id).checkpoints[0]
    assert call.status == "completed" and [attempt.status for attempt in call.attempts] == ["completed"]
    np.testing.assert_array_equal(load_value(Storage(prefix, s3_emulator.options), dataclasses.asdict(call.output)), 3.0)


@checkpoint(ray_options={"num_cpus": 2})
def whole_node(counter_dir: str) -> str:
    """Needs every CPU of the shared Ray session."""
    count_calls(counter_dir, "whole_node")
    return "ran"


@flow
def then_whole_node(counter_dir: str, go: str, next_step: str) -> list:
    first = big_leaf.submit(counter_dir, 5, go)
    while not os.path.exists(next_step):
        time.sleep(0.02)
    ran = whole_node(counter_dir)  # before waiting for the first call's value
    return [float(first.result()[0]), ran]


def test_a_task_frees_its_cpu_before_its_output_is_stored(s3_emulator, ray_session, kitaru_home, tmp_path, monkeypatch):
    """While the PUT of one checkpoint's output is held, a checkpoint needing every CPU runs: the first task has ended."""
    from fault_proxy import FaultProxy

    port = int(s3_emulator.endpoint.rsplit(":", 1)[1])
    prefix = f"s3://kitaru/slot-{uuid.uuid4().hex[:8]}"
    counter_dir, go, next_step = tmp_path / "counters", tmp_path / "go", tmp_path / "next"
    counter_dir.mkdir()
    client = KitaruClient()
    with FaultProxy(port, {}) as proxy:
        client.stacks.create("gated", storage_url=prefix, storage_options={**s3_emulator.options, "endpoint_url": proxy.url})
        monkeypatch.setenv("KITARU_STACK", "gated")
        handle = then_whole_node.run(str(counter_dir), str(go), str(next_step), cache=False)
        proxy.hold_puts()
        go.touch()
        try:
            wait_for(lambda: proxy.held == 1, timeout=60, message="the first output's PUT held")
            next_step.touch()
            wait_for(lambda: (counter_dir / "whole_node").exists(), timeout=60, message="the checkpoint needing every CPU ran")
            assert proxy.held >= 1 and handle.status == "running"
        finally:
            proxy.release_puts()
        assert handle.wait(timeout=60) == [5.0, "ran"]
    assert counters(counter_dir) == {"leaf_5": 1, "whole_node": 1}
