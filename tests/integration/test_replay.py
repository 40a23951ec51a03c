"""Replay: reuse before `at`, overrides, divergence, validation before anything runs."""

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.errors import KitaruDivergenceError, KitaruUsageError
from kitaru.testing import count_calls

pytestmark = pytest.mark.usefixtures("ray_home")


@checkpoint
def research(topic, directory):
    count_calls(directory, "research")
    return f"notes on {topic}"


@checkpoint
def write_draft(notes, directory):
    count_calls(directory, "write_draft")
    return f"draft from {notes}"


@checkpoint(type="tool_call")
def publish(draft, directory):
    count_calls(directory, "publish")
    return f"published {draft}"


@flow
def content_pipeline(topic, directory):
    notes = research(topic, directory)
    draft = write_draft(notes, directory)
    return publish(draft, directory)


def runs(directory, name):
    path = directory / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_replay_from_write_draft_with_research_overridden(tmp_path):
    original = content_pipeline.run("ray", str(tmp_path))
    assert original.wait(timeout=60) == "published draft from notes on ray"
    replay = content_pipeline.replay(
        original.exec_id, at="write_draft", checkpoint_overrides={"research": {"output": "edited notes"}}, wait=True
    )
    assert replay.get() == "published draft from edited notes"
    assert (runs(tmp_path, "research"), runs(tmp_path, "write_draft"), runs(tmp_path, "publish")) == (1, 2, 2)
    record = KitaruClient().executions.get(replay.exec_id)
    first = KitaruClient().executions.get(original.exec_id)
    assert record.original_exec_id == original.exec_id
    assert [(c.invocation_id, c.status) for c in record.checkpoints] == [
        ("research", "overridden"),
        ("write_draft", "completed"),
        ("publish", "completed"),
    ]
    assert [c.original_call_id for c in record.checkpoints] == [c.call_id for c in first.checkpoints]


@checkpoint
def inc(x):
    return x + 1


@flow
def chain(x):
    for _ in range(5):
        x = inc(x)
    return x


def test_chain_replayed_at_inc_3_with_inc_2_set_to_100():
    original = chain.run(0)
    assert original.wait(timeout=60) == 5
    replay = KitaruClient().executions.replay(original.exec_id, at="inc_3", invocation_overrides={"inc_2": {"output": 100}})
    assert replay.wait(timeout=60) == 103
    calls = KitaruClient().executions.get(replay.exec_id).checkpoints
    assert [(c.invocation_id, c.status) for c in calls] == [
        ("inc", "replayed"),
        ("inc_2", "overridden"),
        ("inc_3", "completed"),
        ("inc_4", "completed"),
        ("inc_5", "completed"),
    ]
    assert [c.output.load() for c in calls] == [1, 100, 101, 102, 103]


def test_flow_overrides_input_overrides_and_skip(tmp_path):
    original = content_pipeline.run("ray", str(tmp_path))
    original.wait(timeout=60)
    replay = content_pipeline.replay(
        original.exec_id,
        at="research",
        flow_overrides={"topic": "dask"},
        invocation_overrides={"write_draft": {"input": {"notes": "forced notes"}}},
        skip=["publish"],
    )
    assert replay.wait(timeout=60) == "published draft from notes on ray"  # publish reused despite being live
    calls = {c.invocation_id: c for c in KitaruClient().executions.get(replay.exec_id).checkpoints}
    assert calls["research"].output.load() == "notes on dask"
    assert calls["write_draft"].output.load() == "draft from forced notes"
    assert calls["publish"].status == "replayed"


CODE_VERSION = {"calls_inc_first": False}


@flow
def evolving(topic, directory):
    if CODE_VERSION["calls_inc_first"]:
        inc(1)  # a change made after the original ran
    notes = research(topic, directory)
    return write_draft(notes, directory)


def test_divergence_names_the_first_mismatch(tmp_path, monkeypatch):
    original = evolving.run("ray", str(tmp_path))
    original.wait(timeout=60)
    monkeypatch.setitem(CODE_VERSION, "calls_inc_first", True)
    replay = KitaruClient().executions.replay(original.exec_id, at="write_draft")
    with pytest.raises(KitaruDivergenceError) as info:
        replay.wait(timeout=60)
    assert "'research'" in str(info.value) and "'inc'" in str(info.value)
    execution = KitaruClient().executions.get(replay.exec_id)
    assert execution.status == "failed" and execution.failure["origin"] == "divergence"
    assert runs(tmp_path, "write_draft") == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"at": "nope"}, "matches no call"),
        ({"at": "research", "checkpoint_overrides": {"missing": {"output": 1}}}, "not the name of any checkpoint"),
        ({"at": "research", "invocation_overrides": {"research_9": {"output": 1}}}, "not an invocation id"),
        ({"at": "research", "invocation_overrides": {"research": {"model": "openai/gpt-5-nano"}}}, "only applies to llm_call"),
        ({"at": "research", "invocation_overrides": {"write_draft": {"code": "tests:x"}}}, "only applies to tool_call"),
        ({"at": "research", "invocation_overrides": {"research": {"bogus": 1}}}, "must be one of"),
        ({"at": "research", "flow_overrides": {"nope": 1}}, "does not take"),
    ],
)
def test_bad_replay_arguments_fail_before_anything_runs(tmp_path, kwargs, message):
    original = content_pipeline.run("ray", str(tmp_path))
    original.wait(timeout=60)
    with pytest.raises(KitaruUsageError, match=message):
        KitaruClient().executions.replay(original.exec_id, **kwargs)
    assert len(KitaruClient().executions.list()) == 1


@checkpoint
def fetch(x):
    return x


@flow
def ambiguous(x):
    first = inc(x, id="fetch")
    return fetch(first)


def test_ambiguous_selector_is_rejected():
    original = ambiguous.run(1)
    assert original.wait(timeout=60) == 2
    with pytest.raises(KitaruUsageError, match="ambiguous"):
        KitaruClient().executions.replay(original.exec_id, at="fetch")
    assert KitaruClient().executions.replay(original.exec_id, at="fetch_2").wait(timeout=60) == 2


@flow
def waits_then_adds(x):
    answer = kitaru.wait(schema=int, name="bonus", timeout=60)
    return inc(x + answer)


def test_a_wait_before_at_reuses_its_recorded_input():
    original = waits_then_adds.run(1)
    kitaru.testing.wait_for(lambda: KitaruClient().executions.pending_waits(original.exec_id), timeout=30)
    KitaruClient().executions.input(original.exec_id, wait="bonus", value=10)
    assert original.wait(timeout=60) == 12
    replay = KitaruClient().executions.replay(original.exec_id, at="inc", flow_overrides={"x": 100})
    assert replay.wait(timeout=60) == 111
    assert kitaru.is_replay() is False


@checkpoint(type="tool_call")
def shout(draft, directory):
    """A replacement for ``publish``, given to a replay as a ``code`` override."""
    return f"PUBLISHED {draft.upper()}"


def test_code_override_runs_the_replacement_function(tmp_path):
    original = content_pipeline.run("ray", str(tmp_path))
    original.wait(timeout=60)
    replay = content_pipeline.replay(
        original.exec_id, at="publish", invocation_overrides={"publish": {"code": "test_replay:shout"}}
    )
    assert replay.wait(timeout=60) == "PUBLISHED DRAFT FROM NOTES ON RAY"
    assert runs(tmp_path, "publish") == 1  # the original function did not run again
