"""Durable waits: schemas, validation, suspension, input while the driver is down, races, abort."""

import os
import subprocess
import sys
import threading

import pydantic
import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.errors import KitaruConflictError, KitaruNotFoundError, KitaruUsageError, KitaruWaitValidationError
from kitaru.testing import count_calls, wait_for

pytestmark = pytest.mark.usefixtures("ray_home")


class Review(pydantic.BaseModel):
    approved: bool
    comment: str = ""


@checkpoint
def draft(topic, directory):
    count_calls(directory, "draft")
    return f"draft about {topic}"


@checkpoint
def publish(text, directory):
    count_calls(directory, "publish")
    return f"published: {text}"


@flow
def review_flow(topic, directory, timeout):
    text = draft(topic, directory)
    review = kitaru.wait(schema=Review, name="review", question="Approve the draft?", timeout=timeout)
    if not review.approved:
        return f"rejected: {review.comment}"
    return publish(text, directory)


def pending(exec_id):
    return KitaruClient().executions.pending_waits(exec_id)


def test_wait_records_schema_and_continues_on_valid_input(tmp_path):
    handle = review_flow.run("ray", str(tmp_path), 60)
    [waiting] = wait_for(lambda: pending(handle.exec_id), timeout=30)
    assert waiting.name == "review" and waiting.question == "Approve the draft?"
    assert waiting.schema["properties"]["approved"] == {"title": "Approved", "type": "boolean"}
    assert handle.status == "waiting"
    client = KitaruClient()
    with pytest.raises(KitaruWaitValidationError, match="approved"):
        client.executions.input(handle.exec_id, wait="review", value={"comment": "no flag"})
    assert [w.name for w in pending(handle.exec_id)] == ["review"]  # a bad input leaves the wait open
    client.executions.input(handle.exec_id, value={"approved": True})  # the only pending wait: no name needed
    assert handle.wait(timeout=60) == "published: draft about ray"
    with pytest.raises(KitaruConflictError):
        client.executions.input(handle.exec_id, wait="review", value={"approved": False})
    kinds = [e["kind"] for e in client.executions.events(handle.exec_id)]
    assert kinds.index("wait.opened") < kinds.index("wait.answered")


def test_wait_suspends_and_input_resumes_without_repeating_work(tmp_path):
    handle = review_flow.run("suspension", str(tmp_path), 0.2)
    wait_for(lambda: handle._driver.thread and not handle._driver.thread.is_alive(), timeout=30)  # the driver has exited
    record = KitaruClient().executions.get(handle.exec_id)
    assert record.status == "waiting" and [w.name for w in record.pending_waits] == ["review"]
    resumed = KitaruClient().executions.input(handle.exec_id, wait="review", value={"approved": False, "comment": "too short"})
    assert resumed is not None
    assert handle.wait(timeout=60) == "rejected: too short"
    assert count_calls(tmp_path, "draft") == 2  # ran once, plus this count


def test_input_with_no_resume_leaves_the_execution_suspended(tmp_path):
    handle = review_flow.run("later", str(tmp_path), 0.1)
    wait_for(
        lambda: KitaruClient().executions.get(handle.exec_id).pending_waits and not handle._driver.thread.is_alive(), timeout=30
    )
    assert KitaruClient().executions.input(handle.exec_id, wait="review", value={"approved": True}, resume=False) is None
    assert KitaruClient().executions.get(handle.exec_id).status == "waiting"
    [resumed] = KitaruClient().executions.resume_all()
    assert resumed.wait(timeout=60) == "published: draft about later"


@flow
def gate_flow():
    kitaru.wait(name="gate", timeout=60)
    value = kitaru.wait(schema=int, name="number", timeout=60)
    return value * 2


def test_gate_accepts_anything_and_scalar_schemas_are_enforced():
    handle = gate_flow.run()
    client = KitaruClient()
    wait_for(lambda: pending(handle.exec_id), timeout=30)
    client.executions.input(handle.exec_id, wait="gate", value=True)
    wait_for(lambda: [w.name for w in pending(handle.exec_id)] == ["number"], timeout=30)
    with pytest.raises(KitaruWaitValidationError, match="integer"):
        client.executions.input(handle.exec_id, wait="number", value="seven")
    with pytest.raises(KitaruNotFoundError, match="no wait named 'nope'"):
        client.executions.input(handle.exec_id, wait="nope", value=1)
    client.executions.input(handle.exec_id, wait="number", value=21)
    assert handle.wait(timeout=60) == 42


def test_exactly_one_of_two_concurrent_inputs_wins():
    handle = gate_flow.run()
    wait_for(lambda: pending(handle.exec_id), timeout=30)
    outcomes = []
    barrier = threading.Barrier(2)

    def answer():
        barrier.wait()
        try:
            KitaruClient().executions.input(handle.exec_id, wait="gate", value=True)
            outcomes.append("ok")
        except KitaruConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=answer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    KitaruClient().executions.cancel(handle.exec_id)


@flow
def abortable():
    try:
        kitaru.wait(name="approval", timeout=60)
    except kitaru.KitaruWaitAbortedError:
        return "aborted and handled"


def test_abort_wait_raises_in_the_flow_body():
    handle = abortable.run()
    wait_for(lambda: pending(handle.exec_id), timeout=30)
    KitaruClient().executions.abort_wait(handle.exec_id, wait="approval")
    assert handle.wait(timeout=60) == "aborted and handled"


def test_uncaught_abort_cancels_the_execution():
    handle = gate_flow.run()
    wait_for(lambda: pending(handle.exec_id), timeout=30)
    KitaruClient().executions.abort_wait(handle.exec_id)
    with pytest.raises(kitaru.KitaruCancelledError):
        handle.wait(timeout=60)


def test_wait_outside_a_flow_and_bad_schema():
    with pytest.raises(kitaru.KitaruContextError):
        kitaru.wait()
    with pytest.raises(KitaruUsageError):
        KitaruClient().executions.input("no-such-execution", value=1)


SCRIPT = """
import os, sys, time
import kitaru
from kitaru import checkpoint, flow
from kitaru.testing import count_calls

@checkpoint
def before(directory):
    count_calls(directory, "before")
    return 1

@checkpoint
def after(directory, value):
    count_calls(directory, "after")
    return value + 1

@flow
def crashing_wait(directory):
    first = before(directory)
    answer = kitaru.wait(schema=int, name="answer", timeout=60)
    return after(directory, first + answer)

handle = crashing_wait.run(sys.argv[1], exec_id=sys.argv[2])
while not kitaru.KitaruClient().executions.pending_waits(sys.argv[2]):
    time.sleep(0.02)
if sys.argv[3] == "after-input":
    while kitaru.KitaruClient().executions.pending_waits(sys.argv[2]):
        time.sleep(0.01)
os.kill(os.getpid(), 9)
"""


@pytest.mark.parametrize("crash", ["before-input", "after-input"])
def test_input_survives_a_driver_crash(crash, ray_session, kitaru_home, tmp_path):
    script = tmp_path / "crashing_wait.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "KITARU_HOME": str(kitaru_home), "KITARU_RAY_ADDRESS": ray_session, "KITARU_LEASE_SECONDS": "1"}
    exec_id = f"wait-crash-{crash}"
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path), exec_id, crash], env=env)
    client = KitaruClient()
    wait_for(lambda: client.executions.list() and client.executions.pending_waits(exec_id), timeout=60)
    if crash == "after-input":
        client.executions.input(exec_id, wait="answer", value=41)  # the driver sees it, then dies
    assert process.wait(timeout=60) == -9
    wait_for(lambda: client.executions.get(exec_id).status == "interrupted", timeout=30)
    if crash == "before-input":
        assert client.executions.input(exec_id, wait="answer", value=41, resume=False) is None  # stored while nobody drives it
    committed_before_crash = {c.invocation_id for c in client.executions.get(exec_id).checkpoints if c.status == "completed"}
    assert client.executions.resume(exec_id).wait(timeout=60) == 43
    assert count_calls(tmp_path, "before") == 2  # committed before the crash: ran once
    after_runs = count_calls(tmp_path, "after") - 1
    assert after_runs == 1 if "after" in committed_before_crash else after_runs in (1, 2)  # uncommitted: may run again


PROMPT_SCRIPT = """
import sys
import kitaru
from kitaru import flow

@flow
def asks():
    return kitaru.wait(schema=int, name="number", question="Pick a number", timeout=60) + 1

print("RESULT", asks.run().wait(timeout=60), flush=True)
"""


def test_local_run_on_a_terminal_prompts_inline(ray_session, kitaru_home, tmp_path):
    import pty

    script = tmp_path / "asks.py"
    script.write_text(PROMPT_SCRIPT)
    controller, terminal = pty.openpty()
    env = {**os.environ, "KITARU_HOME": str(kitaru_home), "KITARU_RAY_ADDRESS": ray_session}
    env.pop("KITARU_NO_PROMPT", None)
    process = subprocess.Popen([sys.executable, str(script)], stdin=terminal, stdout=subprocess.PIPE, stderr=terminal, env=env)
    os.close(terminal)
    seen = b""
    while b"Pick a number" not in seen:
        seen += os.read(controller, 4096)
    os.write(controller, b"not a number\n")
    while b"not valid JSON" not in seen:
        seen += os.read(controller, 4096)
    os.write(controller, b"41\n")
    out, _ = process.communicate(timeout=60)
    os.close(controller)
    assert "RESULT 42" in out.decode()
