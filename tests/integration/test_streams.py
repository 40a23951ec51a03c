"""Live events and logs: ``executions.stream_events`` / ``stream_logs`` (server-sent events remote, the database embedded)
and ``kitaru executions logs --follow`` on the same mechanism."""

import json
import subprocess
import sys
import threading

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.client._streams import parse_sse
from kitaru.errors import KitaruNotFoundError
from kitaru.testing import wait_for


@checkpoint
def shout(word):
    print(f"shouting {word}")
    kitaru.progress(f"{word} done", percent=50)
    return word.upper()


@flow
def gated(words, timeout):
    loud = [shout(w) for w in words]
    kitaru.wait(schema=bool, name="go", question="Go on?", timeout=timeout)
    print("after the wait")
    return loud


def test_parse_sse_messages_comments_and_multiline_data():
    lines = ["id: 3", "event: log", 'data: {"id": 3}', "", ": keepalive", "", "data: a", "data: b", "", "event: end", "data: {}"]
    assert list(parse_sse(iter(lines))) == [("log", '{"id": 3}'), ("message", "a\nb"), ("end", "{}")]


@pytest.mark.ray
def test_streams_follow_an_execution_live_until_it_ends(ray_home):
    client = KitaruClient()
    handle = gated.run(["a", "b"], 60)
    seen: list[dict] = []
    logs: list = []

    def consume():
        seen.extend(client.executions.stream_events(handle.exec_id))
        logs.extend(client.executions.stream_logs(handle.exec_id))

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    wait_for(lambda: any(e["kind"] == "wait.opened" for e in seen), timeout=60, message="the wait.opened event, streamed live")
    assert reader.is_alive()  # still following: the execution waits for input
    client.executions.input(handle.exec_id, wait="go", value=True)
    assert handle.wait(timeout=60) == ["A", "B"]
    reader.join(60)
    assert not reader.is_alive(), "the streams end once the execution is terminal"

    kinds = [e["kind"] for e in seen]
    assert [e["id"] for e in seen] == sorted(e["id"] for e in seen) and len({e["id"] for e in seen}) == len(seen)
    assert {"checkpoint.started", "checkpoint.returned", "progress", "wait.opened", "wait.answered"} <= set(kinds)
    assert kinds.index("wait.opened") < kinds.index("wait.answered")
    messages = [entry.message for entry in logs if not entry.message.startswith("httpx:")]  # remote: the driver's own requests
    assert messages == ["shouting a", "shouting b", "after the wait"] or sorted(messages[:2]) == ["shouting a", "shouting b"]
    assert messages[-1] == "after the wait"

    # since= resumes after a cursor; follow=False returns what is recorded now; filters apply
    middle = seen[len(seen) // 2]["id"]
    assert [e["id"] for e in client.executions.stream_events(handle.exec_id, since=middle, follow=False)] == [
        e["id"] for e in seen if e["id"] > middle
    ]
    only_b = list(client.executions.stream_logs(handle.exec_id, checkpoint="shout_2"))
    assert [e.message for e in only_b] == ["shouting b"] and only_b[0].invocation_id == "shout_2"
    runner = [e.message for e in client.executions.stream_logs(handle.exec_id, source="runner", follow=False)]
    assert [m for m in runner if not m.startswith("httpx:")] == ["after the wait"]
    with pytest.raises(KitaruNotFoundError):
        next(client.executions.stream_events("no-such-execution"))


@pytest.mark.ray
def test_cli_logs_follow_prints_entries_as_they_arrive(ray_home):
    handle = gated.run(["x"], 60)
    wait_for(lambda: KitaruClient().executions.pending_waits(handle.exec_id), timeout=60)
    command = [sys.executable, "-m", "kitaru.cli", "executions", "logs", handle.exec_id, "--follow", "-o", "json"]
    follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = follower.stdout.readline()  # printed while the execution still waits: followed live
    assert json.loads(first)["message"] == "shouting x" and follower.poll() is None
    KitaruClient().executions.input(handle.exec_id, wait="go", value=True)
    handle.wait(timeout=60)
    rest, errors = follower.communicate(timeout=60)
    assert follower.returncode == 0, errors
    messages = [json.loads(line)["message"] for line in rest.splitlines()]
    assert [m for m in messages if not m.startswith("httpx:")] == ["after the wait"]
    limited = subprocess.run([*command, "-n", "1"], capture_output=True, text=True, timeout=60)
    assert limited.returncode == 0 and len(limited.stdout.splitlines()) == 1
