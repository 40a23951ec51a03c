"""Flows and checkpoints on the shared Ray session: values, futures, identity, retries, errors."""

import asyncio
import logging
import os
import sys
import time

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.errors import (
    FailureOrigin,
    KitaruContextError,
    KitaruNotFoundError,
    KitaruStateError,
    KitaruUsageError,
    KitaruUserCodeError,
)
from kitaru.testing import count_calls

pytestmark = pytest.mark.usefixtures("ray_home")


@checkpoint
def add(a, b):
    return a + b


@checkpoint
def double(x):
    return 2 * x


@checkpoint
def total(values):
    return sum(values)


@checkpoint
async def async_square(x):
    await asyncio.sleep(0.01)
    return x * x


@checkpoint
def where_am_i():
    return kitaru.current_execution_id(), kitaru.is_replay()


@flow
def arithmetic(x):
    a = add(x, 1)
    b = double.submit(a)
    c = double.submit(b)
    return add(b, c)


def test_direct_calls_return_values_and_futures_flow_through_ray():
    handle = arithmetic.run(3)
    assert handle.wait(timeout=60) == 24  # a=4, b=8, c=16
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "completed"
    assert [c.invocation_id for c in execution.checkpoints] == ["add", "double", "double_2", "add_2"]
    assert all(c.status == "completed" and len(c.attempts) == 1 for c in execution.checkpoints)
    by_id = {c.invocation_id: c for c in execution.checkpoints}
    assert by_id["add_2"].parent_call_ids == [by_id["double"].call_id, by_id["double_2"].call_id]
    assert by_id["add"].inputs == {"a": 3, "b": 1}
    assert by_id["add_2"].inputs == {"a": {"from": "double"}, "b": {"from": "double_2"}}
    assert by_id["double"].output.load() == 8
    assert execution.result() == 24
    assert execution.inputs == {"x": 3}


@flow
def fan_out(items):
    doubled = double.map(items)
    squares = async_square.map(doubled)
    pairs = add.product([1, 2], [10, 20])
    return total([f.result() for f in squares]), [p.result() for p in pairs], total(doubled)


def test_map_over_lists_and_futures_and_product():
    result = fan_out.run([1, 2, 3]).wait(timeout=60)
    assert result == (4 + 16 + 36, [11, 21, 12, 22], 12)


@checkpoint
def numbers(n):
    return list(range(n))


@flow
def map_over_future(n):
    return [f.result() for f in double.map(numbers.submit(n))]


def test_map_accepts_a_future_of_a_list():
    assert map_over_future.run(4).wait(timeout=60) == [0, 2, 4, 6]


@checkpoint
def stamp(directory, name):
    count_calls(directory, name)
    return time.time()


@flow
def ordered(directory):
    first = stamp.submit(directory, "first")
    second = stamp(directory, "second", after=[first], id="explicit")
    return first.result(), second


def test_after_orders_calls_and_explicit_ids_do_not_consume_numbers(tmp_path):
    handle = ordered.run(str(tmp_path))
    first, second = handle.wait(timeout=60)
    assert first <= second
    calls = {c.invocation_id: c for c in KitaruClient().executions.get(handle.exec_id).checkpoints}
    assert set(calls) == {"stamp", "explicit"}
    assert calls["explicit"].parent_call_ids == [calls["stamp"].call_id]


@checkpoint(retries=2, retry_delay=0.05, retry_backoff=2.0)
def flaky(directory):
    if count_calls(directory, "flaky") < 3:
        raise ConnectionError("try again")
    return "ok"


@flow
def uses_flaky(directory):
    return flaky(directory)


def test_retries_record_every_attempt(tmp_path):
    handle = uses_flaky.run(str(tmp_path))
    assert handle.wait(timeout=60) == "ok"
    [call] = KitaruClient().executions.get(handle.exec_id).checkpoints
    assert [a.status for a in call.attempts] == ["failed", "failed", "completed"]
    assert call.attempts[0].error["type"] == "ConnectionError"
    gaps = [call.attempts[i + 1].started_at - call.attempts[i].ended_at for i in range(2)]
    assert gaps[0].total_seconds() >= 0.05 and gaps[1].total_seconds() >= 0.1


@checkpoint(timeout=0.5)
def too_slow():
    time.sleep(30)


@flow
def times_out():
    too_slow()


def test_timeout_cancels_the_attempt_and_fails_the_call():
    handle = times_out.run()
    with pytest.raises(KitaruUserCodeError) as info:
        handle.wait(timeout=60)
    assert "KitaruTimeoutError" in info.value.original_type
    assert info.value.invocation_id == "too_slow"


@checkpoint
def broken(x):
    raise ValueError(f"bad value {x}")


@flow
def catches(x):
    try:
        broken(x)
    except ValueError as exc:
        return f"caught: {exc}"


@flow
def does_not_catch(x):
    return broken(x)


def test_checkpoint_errors_reach_the_flow_body_as_the_original_type():
    assert catches.run(1).wait(timeout=60) == "caught: bad value 1"


def test_failed_execution_carries_the_failure():
    handle = does_not_catch.run(2)
    with pytest.raises(KitaruUserCodeError) as info:
        handle.wait(timeout=60)
    error = info.value
    assert (error.exec_id, error.invocation_id, error.original_type, error.origin) == (
        handle.exec_id,
        "broken",
        "ValueError",
        FailureOrigin.USER_CODE,
    )
    assert "bad value 2" in error.original_message and "raise ValueError" in error.traceback
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status == "failed" and execution.failure.invocation_id == "broken"
    with pytest.raises(KitaruStateError):
        execution.result()


@checkpoint(ray_options={"num_cpus": 1, "resources": {}})
def pid_of_worker():
    return os.getpid()


@flow
def where_it_runs():
    return pid_of_worker(), where_am_i()


def test_checkpoints_run_in_ray_workers_with_their_options():
    handle = where_it_runs.run()
    pid, (exec_id, replay) = handle.wait(timeout=60)
    assert pid != os.getpid()
    assert exec_id == handle.exec_id and replay is False


@checkpoint(runtime="inline")
def inline_pid():
    return os.getpid()


@flow
def inline_flow():
    return inline_pid()


def test_inline_checkpoints_run_in_the_driver_and_are_recorded():
    handle = inline_flow.run()
    assert handle.wait(timeout=60) == os.getpid()
    [call] = KitaruClient().executions.get(handle.exec_id).checkpoints
    assert call.status == "completed" and call.output.load() == os.getpid()


def test_calling_a_flow_directly_names_run():
    with pytest.raises(KitaruUsageError, match=r"\.run\("):
        arithmetic(1)


def test_checkpoint_outside_a_flow_is_a_context_error():
    with pytest.raises(KitaruContextError, match="outside a flow"):
        add(1, 2)


@checkpoint
def nested():
    return add(1, 2)


@flow
def calls_nested():
    return nested()


def test_checkpoint_inside_a_checkpoint_is_a_context_error():
    with pytest.raises(KitaruUserCodeError) as info:
        calls_nested.run().wait(timeout=60)
    assert info.value.original_type == "kitaru.errors.KitaruContextError"
    assert "inside a checkpoint" in info.value.original_message


@checkpoint
def make_lock():
    import threading

    return threading.Lock()


@flow
def returns_lock():
    return make_lock()


def test_unserializable_output_names_checkpoint_type_and_fix():
    with pytest.raises(KitaruUserCodeError) as info:
        returns_lock.run().wait(timeout=60)
    message = info.value.original_message
    assert "make_lock" in message and "lock" in message and "register_serializer" in message


def test_exec_id_is_an_idempotency_key(tmp_path):
    handle = uses_flaky.run(str(tmp_path), exec_id="idempotent-1")
    assert handle.wait(timeout=60) == "ok"
    again = uses_flaky.run(str(tmp_path), exec_id="idempotent-1")
    assert again.wait(timeout=10) == "ok"
    assert count_calls(tmp_path, "flaky") == 4  # 3 attempts, nothing re-run, plus this count

    failed = does_not_catch.run(1, exec_id="idempotent-2")
    with pytest.raises(KitaruUserCodeError):
        failed.wait(timeout=60)
    with pytest.raises(KitaruStateError, match="failed.*retry"):
        does_not_catch.run(1, exec_id="idempotent-2")


def test_a_driver_given_a_taken_id_runs_nothing():
    """A detached driver records its execution without looking first (the launcher looked): an id taken
    meanwhile is a completed run (nothing to do) or an error saying what the execution is."""
    from kitaru.config import resolve_settings
    from kitaru.runtime import start_execution

    assert arithmetic.run(3, exec_id="taken-1").wait(timeout=60) == 24
    options = {"settings": resolve_settings(), "cache": None, "retries": None, "stack": None}
    assert start_execution(arithmetic, (3,), {}, exec_id="taken-1", **options) is None
    with pytest.raises(KitaruUserCodeError):
        does_not_catch.run(1, exec_id="taken-2").wait(timeout=60)
    with pytest.raises(KitaruStateError, match="failed.*retry"):
        start_execution(does_not_catch, (1,), {}, exec_id="taken-2", **options)
    assert KitaruClient().executions.get("taken-1").status == "completed"


def test_a_run_in_this_process_reads_nothing_back_from_its_server(monkeypatch):
    """Starting a run records it and its end, and reads nothing back: its id is new (no idempotency lookup)
    and its driver, here, knows the result (no poll of the record)."""
    from kitaru._service import connect_service
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    service_class = type(connect_service(settings.service_url, settings.api_key))
    get_execution = service_class.get_execution
    reads = []

    def counted(self, exec_id, **options):
        reads.append(exec_id)
        return get_execution(self, exec_id, **options)

    monkeypatch.setattr(service_class, "get_execution", counted)
    handle = arithmetic.run(3)
    assert handle.wait(timeout=60) == 24
    assert reads == []
    assert handle.status == "completed" and reads == [handle.exec_id]  # the record says the same


def test_unknown_execution_is_named():
    with pytest.raises(KitaruNotFoundError, match="'no-such-id'"):
        KitaruClient().executions.get("no-such-id")
    with pytest.raises(KitaruNotFoundError, match="'no-such-id'"):
        KitaruClient().executions.resume("no-such-id")


def test_bad_flow_arguments_are_rejected_before_anything_runs():
    with pytest.raises(KitaruUsageError, match="arguments"):
        arithmetic.run(1, 2, 3)
    assert KitaruClient().executions.list() == []


def test_status_get_and_wait_timeout(tmp_path):
    handle = times_out.run()
    assert handle.status == "running"
    with pytest.raises(KitaruStateError, match="not finished"):
        handle.get()
    with pytest.raises(kitaru.KitaruTimeoutError):
        handle.wait(timeout=0.05)
    with pytest.raises(KitaruUserCodeError):
        handle.wait(timeout=60)
    assert handle.status == "failed"


@checkpoint
def chatty(x):
    print(f"stdout from checkpoint {x}")
    print("stderr from checkpoint", file=sys.stderr)
    logging.getLogger("agent").info("log record from checkpoint")
    kitaru.log(tokens=42)
    kitaru.progress("halfway", percent=50)
    return x


@flow
def noisy(x):
    print("stdout from the flow body")
    logging.getLogger("agent").warning("warning from the flow body")
    kitaru.log(owner="tests")
    return chatty(x)


def test_logs_metadata_and_events_are_captured():
    handle = noisy.run(7)
    assert handle.wait(timeout=60) == 7
    client = KitaruClient()
    step = [(e.level, e.message) for e in client.executions.logs(handle.exec_id, source="step")]
    assert ("INFO", "stdout from checkpoint 7") in step
    assert ("WARNING", "stderr from checkpoint") in step
    assert ("INFO", "agent: log record from checkpoint") in step
    runner = [e.message for e in client.executions.logs(handle.exec_id, source="runner")]
    assert "stdout from the flow body" in runner and "agent: warning from the flow body" in runner
    assert all(
        e.invocation_id == "chatty" and e.attempt == 1 for e in client.executions.logs(handle.exec_id, checkpoint="chatty")
    )
    execution = client.executions.get(handle.exec_id)
    assert execution.checkpoints[0].metadata == {"tokens": 42}
    assert kitaru.testing.wait_for(lambda: client.executions.get(handle.exec_id).metadata.get("owner") == "tests", timeout=10)
    kinds = [e.kind for e in client.executions.events(handle.exec_id)]
    assert kinds[:3] == ["checkpoint.started", "progress", "checkpoint.returned"]


@checkpoint
def produce_report(topic):
    kitaru.save("notes", {"topic": topic, "lines": 3})
    return f"report on {topic}"


@checkpoint
def read_back(exec_id):
    return kitaru.load(exec_id, "notes")


@flow
def reporting(topic):
    report = produce_report(topic)
    return report, read_back(kitaru.current_execution_id())


def test_save_and_load_artifacts():
    handle = reporting.run("ray")
    assert handle.wait(timeout=60) == ("report on ray", {"topic": "ray", "lines": 3})
    assert kitaru.load(handle.exec_id, "notes") == {"topic": "ray", "lines": 3}
    assert kitaru.load(handle.exec_id, "produce_report") == "report on ray"
    names = {a.name for a in KitaruClient().artifacts.list(exec_id=handle.exec_id)}
    assert {"notes", "produce_report", "read_back", "__result__"} <= names
    with pytest.raises(KitaruNotFoundError, match="no artifact named 'missing'"):
        kitaru.load(handle.exec_id, "missing")


def test_save_outside_a_checkpoint_is_a_context_error():
    with pytest.raises(KitaruContextError):
        kitaru.save("x", 1)
    with pytest.raises(KitaruContextError):
        kitaru.log(a=1)


def test_s3_storage_url_end_to_end(s3_server, tmp_path):
    # on a stack: against a server, an execution's storage is its stack's (a client's own URL is refused)
    KitaruClient().stacks.create("s3", storage_url=f"s3://kitaru/{tmp_path.name}", storage_options=s3_server)
    handle = arithmetic.run(1, stack="s3")
    assert handle.wait(timeout=60) == 12
    execution = KitaruClient().executions.get(handle.exec_id)
    assert all(c.output.uri.startswith("s3://kitaru/") for c in execution.checkpoints)
    assert execution.checkpoints[0].output.load() == 2


def test_handles_and_executions_render_for_notebooks():
    handle = arithmetic.run(2)
    handle.wait(timeout=60)
    page = handle._repr_html_()
    assert handle.exec_id in page and "double_2" in page and "completed" in page
    assert f"/executions/{handle.exec_id}" in page
    assert KitaruClient().executions.get(handle.exec_id)._repr_html_() == page


def test_log_capture_restores_the_root_logger_level():
    root = logging.getLogger()
    before = root.level
    assert noisy.run(1).wait(timeout=60) == 1
    assert root.level == before
