"""Resume from another process, the lease, and caching (key includes the checkpoint's source)."""

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.errors import KitaruStateError
from kitaru.testing import count_calls, wait_for

pytestmark = pytest.mark.usefixtures("ray_home")
SCRIPT = Path(__file__).with_name("crash_flows.py")


def test_resume_continues_from_the_last_committed_call(ray_session, kitaru_home, tmp_path):
    counter_dir = tmp_path / "counters"
    counter_dir.mkdir()
    env = {**os.environ, "KITARU_HOME": str(kitaru_home), "KITARU_RAY_ADDRESS": ray_session, "KITARU_LEASE_SECONDS": "1"}
    process = subprocess.run(
        [sys.executable, str(SCRIPT), "chain", "resume-me", str(counter_dir), "0", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == -9, process.stderr[-2000:]
    client = KitaruClient()
    with pytest.raises(KitaruStateError, match="still running"):
        client.executions.resume("resume-me")  # the dead driver's lease has not lapsed yet
    wait_for(lambda: client.executions.get("resume-me").status == "interrupted", timeout=15)
    assert [e.exec_id for e in client.executions.list(status="interrupted")] == ["resume-me"]
    before = client.executions.get("resume-me")
    assert [c.invocation_id for c in before.checkpoints] == ["step", "step_2", "step_3", "step_4", "step_5"]

    assert client.executions.resume("resume-me").wait(timeout=60) == 12
    after = client.executions.get("resume-me")
    assert after.status == "completed" and len(after.checkpoints) == 12
    assert {p.name: len(p.read_text().splitlines()) for p in counter_dir.iterdir()} == {f"step_{i}": 1 for i in range(12)}
    with pytest.raises(KitaruStateError, match="already completed"):
        client.executions.resume("resume-me")


def test_lost_lease_reads_as_interrupted_in_listings(ray_session, kitaru_home, tmp_path):
    env = {**os.environ, "KITARU_HOME": str(kitaru_home), "KITARU_RAY_ADDRESS": ray_session, "KITARU_LEASE_SECONDS": "1"}
    subprocess.run(
        [sys.executable, str(SCRIPT), "fanout", "lapsed", str(tmp_path), "0", "0"], env=env, capture_output=True, timeout=120
    )
    wait_for(lambda: KitaruClient().executions.list(status="interrupted"), timeout=15)
    assert KitaruClient().executions.latest(status="interrupted").exec_id == "lapsed"
    assert KitaruClient().executions.list(status="running") == []


@checkpoint
def expensive(directory, x):
    count_calls(directory, "expensive")
    return x * 100


@flow
def cached_flow(directory, x):
    return expensive(directory, x)


@flow(cache=False)
def uncached_flow(directory, x):
    return expensive(directory, x)


def test_identical_calls_are_served_from_the_cache(tmp_path):
    first = cached_flow.run(str(tmp_path), 1)
    assert first.wait(timeout=60) == 100
    second = cached_flow.run(str(tmp_path), 1)
    assert second.wait(timeout=60) == 100
    assert count_calls(tmp_path, "expensive") == 2  # one real run, plus this count
    [call] = KitaruClient().executions.get(second.exec_id).checkpoints
    assert call.status == "cached"
    assert call.original_call_id == KitaruClient().executions.get(first.exec_id).checkpoints[0].call_id
    assert cached_flow.run(str(tmp_path), 2).wait(timeout=60) == 200  # other inputs: a miss


def test_cache_precedence(tmp_path, monkeypatch):
    cached_flow.run(str(tmp_path), 5).wait(timeout=60)
    runs = lambda: len((tmp_path / "expensive").read_text().splitlines())  # noqa: E731
    assert runs() == 1
    cached_flow.run(str(tmp_path), 5, cache=False).wait(timeout=60)  # .run() argument
    assert runs() == 2
    uncached_flow.run(str(tmp_path), 5).wait(timeout=60)  # flow decorator
    assert runs() == 3
    assert uncached_flow.run(str(tmp_path), 5, cache=True).wait(timeout=60) == 500  # .run() beats the decorator
    assert runs() == 3
    monkeypatch.setenv("KITARU_CACHE", "0")  # environment, below configure()
    cached_flow.run(str(tmp_path), 5).wait(timeout=60)
    assert runs() == 4
    kitaru.configure(cache=True)
    cached_flow.run(str(tmp_path), 5).wait(timeout=60)
    assert runs() == 4


MODULE = """
from kitaru import checkpoint, flow

@checkpoint(runtime="inline")
def transform(x):
    return x + {delta}

@flow
def pipeline(x):
    return transform(x)
"""


def test_editing_a_checkpoint_invalidates_its_cache(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.delitem(sys.modules, "editable_steps", raising=False)  # a previous run of this test (other mode) imported it
    source = tmp_path / "editable_steps.py"
    source.write_text(textwrap.dedent(MODULE.format(delta=1)))
    module = importlib.import_module("editable_steps")
    assert module.pipeline.run(1).wait(timeout=60) == 2
    again = module.pipeline.run(1)
    assert again.wait(timeout=60) == 2
    assert KitaruClient().executions.get(again.exec_id).checkpoints[0].status == "cached"

    source.write_text(textwrap.dedent(MODULE.format(delta=2)))
    module = importlib.reload(module)
    edited = module.pipeline.run(1)
    assert edited.wait(timeout=60) == 3
    assert KitaruClient().executions.get(edited.exec_id).checkpoints[0].status == "completed"
