"""Cancel (the Ray task really stops), resume after cancel, retry with fixed code, flow-level retries."""

import time
from pathlib import Path

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.errors import KitaruCancelledError, KitaruStateError, KitaruUserCodeError
from kitaru.testing import count_calls, wait_for

pytestmark = pytest.mark.usefixtures("ray_home")


@checkpoint
def quick(directory):
    count_calls(directory, "quick")
    return 1


@checkpoint
def long_sync(directory):
    heartbeat = Path(directory, "heartbeat")
    for _ in range(600):  # plain sync code: only a forced cancel stops it
        with heartbeat.open("a") as handle:
            handle.write("x")
        time.sleep(0.05)
    return 2


@flow
def slow_flow(directory):
    return quick(directory) + long_sync(directory)


def test_cancel_stops_a_long_sync_checkpoint(tmp_path):
    handle = slow_flow.run(str(tmp_path))
    heartbeat = tmp_path / "heartbeat"
    wait_for(lambda: heartbeat.exists() and heartbeat.stat().st_size > 3, timeout=60)
    started = time.monotonic()
    handle.cancel()
    assert time.monotonic() - started < 5
    assert handle.status == "cancelled"
    with pytest.raises(KitaruCancelledError):
        handle.wait(timeout=10)
    size = heartbeat.stat().st_size
    time.sleep(0.5)
    assert heartbeat.stat().st_size == size  # the task really stopped
    calls = {c.invocation_id: c.status for c in KitaruClient().executions.get(handle.exec_id).checkpoints}
    wait_for(lambda: KitaruClient().executions.get(handle.exec_id).checkpoints[-1].status == "cancelled", timeout=10)
    assert calls["quick"] == "completed"


def test_a_cancelled_execution_can_be_resumed(tmp_path):
    handle = slow_flow.run(str(tmp_path))
    wait_for(lambda: (tmp_path / "heartbeat").exists(), timeout=60)
    KitaruClient().executions.cancel(handle.exec_id)
    with pytest.raises(KitaruStateError, match="already cancelled"):
        KitaruClient().executions.cancel(handle.exec_id)
    resumed = KitaruClient().executions.resume(handle.exec_id)
    wait_for(lambda: KitaruClient().executions.get(handle.exec_id).status == "running", timeout=10)
    resumed.cancel()
    assert count_calls(tmp_path, "quick") == 2  # the completed call was reused on resume


@checkpoint
def needs_fix(directory):
    count_calls(directory, "needs_fix")
    # The "fix" is a file the test writes: Ray workers keep the modules they imported, so a
    # monkeypatched module attribute would not reach them (a new driver process would see new code).
    if not Path(directory, "fixed").exists():
        raise RuntimeError("bug")
    return "fixed"


@flow
def retry_flow(directory):
    return quick(directory), needs_fix(directory)


def test_retry_after_fixing_code_reuses_completed_calls(tmp_path):
    handle = retry_flow.run(str(tmp_path))
    with pytest.raises(KitaruUserCodeError):
        handle.wait(timeout=60)
    (tmp_path / "fixed").touch()
    retried = KitaruClient().executions.retry(handle.exec_id)
    assert retried.exec_id == handle.exec_id
    assert retried.wait(timeout=60) == (1, "fixed")
    [quick_call, fixed_call] = KitaruClient().executions.get(handle.exec_id).checkpoints
    assert quick_call.status == "completed" and len(quick_call.attempts) == 1
    assert [a.status for a in fixed_call.attempts] == ["failed", "completed"]
    with pytest.raises(KitaruStateError, match="already completed"):
        KitaruClient().executions.retry(handle.exec_id)


@flow(retries=2)
def self_healing(directory):
    if count_calls(directory, "body") < 3:
        raise ConnectionError("flaky dependency")
    return quick(directory)


def test_flow_retries_rerun_the_body_automatically(tmp_path):
    assert self_healing.run(str(tmp_path)).wait(timeout=60) == 1
    with pytest.raises(KitaruUserCodeError):
        self_healing.run(str(tmp_path / "other"), retries=0).wait(timeout=60)


@flow
def gated():
    kitaru.wait(name="gate", timeout=5)


def test_cancel_of_a_suspended_execution_and_of_unknown_ids():
    handle = gated.run()
    wait_for(
        lambda: KitaruClient().executions.get(handle.exec_id).status == "waiting" and not handle._driver.thread.is_alive(),
        timeout=30,
    )
    execution = KitaruClient().executions.cancel(handle.exec_id)
    assert execution.status == "cancelled" and execution.pending_waits == []
    resumed = KitaruClient().executions.resume(handle.exec_id)  # it asks for the same input again
    wait_for(lambda: KitaruClient().executions.get(handle.exec_id).pending_waits, timeout=30)
    KitaruClient().executions.input(handle.exec_id, wait="gate", value=True, resume=False)
    assert resumed.wait(timeout=60) is None
    with pytest.raises(kitaru.KitaruNotFoundError):
        KitaruClient().executions.cancel("nope")


def test_retry_in_a_detached_driver(tmp_path, ray_session, monkeypatch):
    monkeypatch.setenv("KITARU_RAY_ADDRESS", ray_session)  # the detached driver joins this test's Ray
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # and imports this module's flow
    handle = retry_flow.run(str(tmp_path))
    with pytest.raises(KitaruUserCodeError):
        handle.wait(timeout=60)
    (tmp_path / "fixed").touch()
    retried = KitaruClient().executions.retry(handle.exec_id, detach=True)
    assert retried.exec_id == handle.exec_id and retried.wait(timeout=120) == (1, "fixed")
