"""Checkpoint outputs stored by the node's runtime actor, on the shared Ray session (SPEC §3.3).

Each kind of output takes its own way from the task to storage: a small value inside the
outcome, a large pickled one as a payload object, a large array, table or data frame as the
value itself.
All of them come back equal from storage, with records naming serializer and BLAKE3. A write
that fails in the actor fails the attempt (origin ``backend``) and the value stays hidden
from the flow body until a later attempt's output is committed.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import uuid

import blake3
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.config import resolve_settings
from kitaru.storage import Storage, serialize
from kitaru.storage.serializers import loads
from kitaru.testing import count_calls, wait_for

pytestmark = pytest.mark.usefixtures("ray_home")

ARRAY_ITEMS = 1024 * 1024  # 8 MiB of float64
TILE_BYTES = bytes(range(256)) * 1024  # 256 KiB: pickled, too large to travel inside the outcome
TILE_MODULE = '''
class Tile:
    """Defined in a module that only the task and the test import."""

    def __init__(self, data):
        self.data = data

    def __eq__(self, other):
        return type(other).__name__ == "Tile" and other.data == self.data
'''


TABLE_ROWS = 50_000
# The checkpoints build their values themselves: Ray ships each checkpoint's function by value, but a
# helper function of this module by reference, and the workers cannot import a test module.


@checkpoint
def small_value():
    return {"answer": 42, "tags": ["a", "b"]}


@checkpoint
def custom_object(module_dir: str, module_name: str):
    sys.path.insert(0, module_dir)
    return importlib.import_module(module_name).Tile(TILE_BYTES)


@checkpoint
def big_array():
    return np.arange(ARRAY_ITEMS, dtype=np.float64)


@checkpoint
def arrow_table():
    return pa.table({"id": np.arange(TABLE_ROWS), "name": [f"row {i}" for i in range(TABLE_ROWS)]})


@checkpoint
def data_frame():
    return pd.DataFrame({"id": np.arange(TABLE_ROWS), "name": [f"row {i}" for i in range(TABLE_ROWS)]})


@flow
def every_kind(module_dir: str, module_name: str) -> dict:
    small = small_value()
    tile = custom_object(module_dir, module_name)
    array = big_array()
    table = arrow_table()
    frame = data_frame()
    return {"small": small, "tile": len(tile.data), "array": float(array.sum()), "rows": [table.num_rows, len(frame)]}


@pytest.fixture
def tile_module(tmp_path, monkeypatch):
    """A module of a fresh name (so no process has imported it yet); importable here and, through its path, in the task."""
    name = f"kitaru_tiles_{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "tiles"
    directory.mkdir()
    (directory / f"{name}.py").write_text(TILE_MODULE)
    monkeypatch.syspath_prepend(str(directory))
    yield str(directory), name
    sys.modules.pop(name, None)


def test_every_kind_of_output_is_stored_by_the_actor_and_loads_back_equal(tile_module):
    """The runtime actor never imports the tile's module: it stores the bytes the task made."""
    handle = every_kind.run(*tile_module, cache=False)
    assert handle.wait(timeout=120) == {
        "small": {"answer": 42, "tags": ["a", "b"]},
        "tile": len(TILE_BYTES),
        "array": float(np.arange(ARRAY_ITEMS, dtype=np.float64).sum()),
        "rows": [TABLE_ROWS, TABLE_ROWS],
    }
    execution = KitaruClient().executions.get(handle.exec_id)
    outputs = {call.invocation_id: call.output for call in execution.checkpoints}
    assert all(call.status == "completed" and len(call.attempts) == 1 for call in execution.checkpoints)
    storage = Storage(resolve_settings().storage_url)
    expected = {
        "small_value": ("json", "builtins:dict"),
        "custom_object": ("cloudpickle", f"{tile_module[1]}:Tile"),
        "big_array": ("arrow", "numpy:ndarray"),
        "arrow_table": ("arrow", "pyarrow.lib:Table"),
        "data_frame": ("arrow", "pandas:DataFrame"),
    }
    for invocation_id, (serializer, type_path) in expected.items():
        output = outputs[invocation_id]
        assert (output.serializer, output.type_path, output.digest_algorithm) == (serializer, type_path, "blake3")
        stored = storage.fs.cat_file(storage.object_path(output.digest))
        assert blake3.blake3(stored).hexdigest() == output.digest and len(stored) == output.size

    assert outputs["small_value"].load() == {"answer": 42, "tags": ["a", "b"]}
    tile = outputs["custom_object"].load()
    assert type(tile).__module__ == tile_module[1] and tile.data == TILE_BYTES
    assert outputs["arrow_table"].load().equals(arrow_table.func())
    pd.testing.assert_frame_equal(outputs["data_frame"].load(), data_frame.func())
    array = outputs["big_array"].load()
    np.testing.assert_array_equal(array, np.arange(ARRAY_ITEMS, dtype=np.float64))
    assert not array.flags.owndata and not array.flags.writeable  # a view of the read-only mapped object

    record = outputs["big_array"]
    buffer = storage.get(record.uri, record.digest)
    assert np.shares_memory(loads("arrow", buffer, record.type_path), np.frombuffer(buffer, dtype=np.uint8))
    calls = {call["invocation_id"]: call for call in KitaruClient().service.get_execution(handle.exec_id)["checkpoints"]}
    assert calls["big_array"]["output"]["preview"]["kind"] == "tensor"
    assert calls["small_value"]["output"]["preview"]["kind"] == "json"


# --- a write that fails in the actor ---------------------------------------------------------------

FAULTY_ITEMS = 200_000  # 1.6 MiB: left in the object store for the actor to write


@checkpoint(retries=1, retry_delay=0.01)
def guarded(counter_dir: str, gate: str):
    """The second attempt waits for ``gate`` (the test opens it once the storage is writable again)."""
    if count_calls(counter_dir, "guarded") > 1:
        while not os.path.exists(gate):
            time.sleep(0.02)
    return np.full(FAULTY_ITEMS, 7.0)


@flow
def write_then_look(counter_dir: str, gate: str, seen: str) -> dict:
    array = guarded(counter_dir, gate)
    # what is committed at the moment the value reaches the body
    call = next(c for c in KitaruClient().executions.get(kitaru.current_execution_id()).checkpoints if c.name == "guarded")
    with open(seen, "w") as marker:
        marker.write("seen")
    return {"sum": float(array.sum()), "attempts": [attempt.status for attempt in call.attempts]}


def test_a_failed_write_in_the_actor_fails_the_attempt_and_the_retry_stores_it(tmp_path):
    """The object's shard directory is a file: the actor cannot store the output, then can once it is gone."""
    storage = Storage(resolve_settings().storage_url)
    digest = blake3.blake3(memoryview(serialize(np.full(FAULTY_ITEMS, 7.0)).data)).hexdigest()
    shard = storage.object_path(digest).rsplit("/", 1)[0]
    assert not os.path.exists(shard)
    os.makedirs(os.path.dirname(shard), exist_ok=True)
    with open(shard, "w") as blocker:
        blocker.write("not a directory")
    counter_dir, gate, seen = tmp_path / "counters", tmp_path / "gate", tmp_path / "seen"
    counter_dir.mkdir()

    handle = write_then_look.run(str(counter_dir), str(gate), str(seen), cache=False)
    client = KitaruClient()

    def first_attempt():
        calls = [c for c in client.executions.get(handle.exec_id).checkpoints if c.name == "guarded"]
        return calls and calls[0].attempts and calls[0].attempts[0].status == "failed" and calls[0].attempts[0]

    failed = wait_for(first_attempt, timeout=60, message="the first attempt failed")
    assert failed.error["origin"] == "backend"
    message = failed.error["message"]
    assert message.startswith(f"could not write to storage {storage.url!r}") and "\n" not in message
    assert "FileExistsError" in message
    assert not seen.exists() and handle.status == "running"  # the failed attempt's value never reached the body

    os.remove(shard)
    gate.touch()
    assert handle.wait(timeout=60) == {"sum": float(np.full(FAULTY_ITEMS, 7.0).sum()), "attempts": ["failed", "completed"]}
    call = next(c for c in client.executions.get(handle.exec_id).checkpoints if c.name == "guarded")
    assert [attempt.status for attempt in call.attempts] == ["failed", "completed"]
    assert call.output.digest == digest and os.path.isfile(storage.object_path(digest))
    np.testing.assert_array_equal(call.output.load(), np.full(FAULTY_ITEMS, 7.0))
    assert (counter_dir / "guarded").read_text().count("x") == 2


# --- a fan-out wider than the actor calls allowed out at once -------------------------------------


@checkpoint
def square(i: int) -> int:
    return i * i


@checkpoint
def refuse(i: int) -> int:
    raise ValueError(f"refused {i}")


@flow
def wide(width: int) -> dict:
    squares = square.map(list(range(width)))
    array = big_array.submit()
    refused = refuse.submit(7)
    total = sum(future.result() for future in squares)
    try:
        refused.result()
        error = None
    except ValueError as exc:
        error = str(exc)
    return {"total": total, "array": float(array.result().sum()), "error": error}


def test_calls_beyond_the_actor_calls_out_at_once_wait_for_a_slot_and_commit_the_same(monkeypatch):
    """With one actor call out at a time, every call waits for a slot: same values, same records.

    A large array (the actor asks for its refs while holding the slot) and a failing checkpoint included.
    """
    from kitaru.runtime import _calls

    monkeypatch.setattr(_calls, "_FINISH_CALLS", 1)
    monkeypatch.setattr(_calls, "_slots", None)
    width = 40
    handle = wide.run(width, cache=False)
    assert handle.wait(timeout=120) == {
        "total": sum(i * i for i in range(width)),
        "array": float(np.arange(ARRAY_ITEMS, dtype=np.float64).sum()),
        "error": "refused 7",
    }
    execution = KitaruClient().executions.get(handle.exec_id)
    calls = {call.invocation_id: call for call in execution.checkpoints}
    assert len(calls) == width + 2
    for i in range(width):
        call = calls["square" if i == 0 else f"square_{i + 1}"]
        assert call.status == "completed" and [a.status for a in call.attempts] == ["completed"]
        assert call.output.load() == i * i
    np.testing.assert_array_equal(calls["big_array"].output.load(), np.arange(ARRAY_ITEMS, dtype=np.float64))
    refused = calls["refuse"]
    assert refused.status == "failed" and refused.attempts[0].error["type"] == "ValueError"
    assert refused.output is None
