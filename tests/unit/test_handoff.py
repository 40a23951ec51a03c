"""The hand-over of a checkpoint's output from its Ray task to the runtime actor (no Ray running).

``hand_over`` runs in the task, ``write_output`` in the actor. What travels between them is
pickled here as Ray would carry it, and the actor's side runs with no registered serializer
(the actor serves every driver of its node and imports none of their code). Whatever the
path, the stored object and its record are those :func:`store_value` makes of the value.
"""

from __future__ import annotations

import pickle
import threading
from decimal import Decimal

import blake3
import numpy as np
import pandas as pd
import pyarrow as pa
import pydantic
import pytest
from values import assert_same_value

from kitaru.runtime._attempt import run_task_attempt
from kitaru.runtime._handoff import INLINE_BYTES, hand_over, write_output
from kitaru.storage import SerializationError, Storage, load_value, register_serializer, serialize, store_value
from kitaru.storage import serializers as serializers_module

WHAT = "the output of checkpoint 'produce'"


class Report(pydantic.BaseModel):
    title: str
    scores: list[float]


class Blob:
    """A plain object: pickled."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blob) and other.data == self.data


class Grid(np.ndarray):
    """An array type with a serializer of its own."""


@pytest.fixture
def storage(tmp_path):
    return Storage(tmp_path.joinpath("store").as_uri())


@pytest.fixture
def reference(tmp_path):
    """Another root, where :func:`store_value` stores the same values."""
    return Storage(tmp_path.joinpath("reference").as_uri())


@pytest.fixture
def grid_serializer():
    """A serializer for :class:`Grid`, registered for the test only (as a user's module would, in the task)."""
    registered = list(serializers_module._registered)
    register_serializer(
        "grid",
        types=Grid,
        dumps=lambda grid: np.ascontiguousarray(grid).tobytes(),
        loads=lambda data, _type: np.frombuffer(data, dtype=np.float64).view(Grid),
    )
    yield
    serializers_module._registered[:] = registered


def carried(obj):
    """``obj`` after a trip through Ray's object store (pickle protocol 5, as Ray serializes)."""
    return pickle.loads(pickle.dumps(obj, protocol=5))


def in_actor(storage, handoff, payload, value):
    """``write_output`` as the actor calls it: the handoff and the source it names, after their trip."""
    source = {"inline": None, "payload": payload, "value": value}[handoff["source"]]
    return write_output(storage, carried(handoff), carried(source))


def same_record(written: dict, expected: dict, storage: Storage, reference: Storage) -> None:
    """The same object (digest, size, serializer, type, preview), under each root's own URI."""
    written, expected = dict(written), dict(expected)
    assert written.pop("uri") == storage.uri_for(storage.object_path(written["digest"]))
    assert expected.pop("uri") == reference.uri_for(reference.object_path(expected["digest"]))
    assert written == expected
    assert written["digest_algorithm"] == "blake3"


def test_a_small_json_value_travels_inline(storage, reference):
    value = {"answer": 42, "items": ["a", None, 2.5]}
    handoff, payload = hand_over(value, what=WHAT)
    assert payload is None
    assert handoff["source"] == "inline" and handoff["serializer"] == "json"
    assert handoff["data"] == b'{"answer":42,"items":["a",null,2.5]}'
    assert handoff["preview"]["kind"] == "json"
    written = in_actor(storage, handoff, payload, value)
    same_record(written, store_value(reference, value).to_dict(), storage, reference)
    assert load_value(storage, written) == value


@pytest.mark.parametrize(
    ("value", "serializer", "source"),
    [
        (Report(title="small", scores=[0.5, 1.0]), "pydantic", "inline"),
        (Report(title="large", scores=[float(i) for i in range(INLINE_BYTES // 4)]), "pydantic", "payload"),
        (Blob(b"x" * 100), "cloudpickle", "inline"),
        (Blob(bytes(range(256)) * (INLINE_BYTES // 256 + 1)), "cloudpickle", "payload"),
        (np.array([f"item {i}" for i in range(INLINE_BYTES // 4)], dtype=object), "cloudpickle", "payload"),
        # a frame holding Python objects: its classes are importable here, not in the actor
        (
            pd.DataFrame({"x": np.arange(INLINE_BYTES), "price": [Decimal(i) / 100 for i in range(INLINE_BYTES)]}),
            "arrow",
            "payload",
        ),
        (np.arange(100, dtype=np.int32), "arrow", "inline"),  # an array too small to be worth leaving in place
    ],
    ids=["pydantic-small", "pydantic-large", "pickle-small", "pickle-large", "object-array", "object-frame", "array-small"],
)
def test_values_are_serialized_in_the_task_and_stored_as_by_store_value(storage, reference, value, serializer, source):
    handoff, payload = hand_over(value, what=WHAT)
    expected_bytes = bytes(memoryview(serialize(value).data).cast("B"))
    assert (handoff["source"], handoff["serializer"]) == (source, serializer)
    assert handoff["type_path"] == serializers_module.type_path_of(value)
    if source == "inline":
        assert payload is None and handoff["data"] == expected_bytes and len(expected_bytes) <= INLINE_BYTES
    else:
        assert "data" not in handoff and len(expected_bytes) > INLINE_BYTES
        assert bytes(memoryview(payload).cast("B")) == expected_bytes
    written = in_actor(storage, handoff, payload, value)
    same_record(written, store_value(reference, value).to_dict(), storage, reference)
    assert written["digest"] == blake3.blake3(expected_bytes).hexdigest()
    path = storage.object_path(written["digest"])
    assert storage.fs.cat_file(path) == expected_bytes and written["size"] == len(expected_bytes)
    assert_same_value(load_value(storage, written), value)


@pytest.mark.parametrize(
    "value",
    [
        np.arange(INLINE_BYTES, dtype=np.float64).reshape(-1, 8),
        pa.table({"x": np.arange(INLINE_BYTES, dtype=np.int64), "y": np.ones(INLINE_BYTES)}),
        pd.DataFrame({"x": np.arange(INLINE_BYTES), "y": ["label"] * INLINE_BYTES}),
    ],
    ids=["ndarray", "arrow-table", "pandas"],
)
def test_large_arrays_tables_and_frames_stay_the_value(storage, reference, value):
    """Nothing is serialized in the task: the actor reads the value from the object store and stores it."""
    handoff, payload = hand_over(value, what=WHAT)
    assert handoff == {"source": "value", "what": WHAT} and payload is None
    written = in_actor(storage, handoff, payload, value)
    same_record(written, store_value(reference, value).to_dict(), storage, reference)
    assert written["serializer"] == "arrow" and written["preview"]["kind"] in ("tensor", "table")
    assert_same_value(load_value(storage, written), value)


@pytest.mark.usefixtures("grid_serializer")
def test_a_registered_serializer_wins_and_its_bytes_are_made_in_the_task(storage):
    """A large array of a type with a registered serializer is not left as the value: the actor could not serialize it."""
    grid = np.arange(INLINE_BYTES, dtype=np.float64).view(Grid)
    handoff, payload = hand_over(grid, what=WHAT)
    assert handoff["source"] == "payload" and handoff["serializer"] == "grid"
    assert bytes(memoryview(payload).cast("B")) == grid.tobytes()
    small_handoff, _ = hand_over(np.arange(4, dtype=np.float64).view(Grid), what=WHAT)
    assert small_handoff["source"] == "inline" and small_handoff["serializer"] == "grid"

    serializers_module._registered[:] = []  # the actor's process: no user module imported, nothing registered
    written = in_actor(storage, handoff, payload, grid)
    assert written["serializer"] == "grid" and written["type_path"] == serializers_module.type_path_of(grid)
    assert written["digest"] == blake3.blake3(grid.tobytes()).hexdigest()
    assert storage.fs.cat_file(storage.object_path(written["digest"])) == grid.tobytes()


def test_an_unserializable_value_names_the_checkpoint():
    with pytest.raises(SerializationError) as caught:
        hand_over(threading.Lock(), what=WHAT)
    message = str(caught.value)
    assert "'produce'" in message and "lock" in message.lower() and "register_serializer" in message


def _call(tmp_path, invocation_id: str) -> dict:
    settings = {
        "storage_url": tmp_path.joinpath("store").as_uri(),
        "storage_options": {},
        "service_url": None,
        "log_level": "INFO",
    }
    return {"exec_id": "e1", "invocation_id": invocation_id, "attempt": 1, "settings": settings}


def test_the_task_returns_the_value_and_hands_over_without_writing(tmp_path):
    """``run_task_attempt`` (the body of a checkpoint's Ray task) stores nothing itself."""
    array = np.ones(INLINE_BYTES)
    value, outcome, payload = run_task_attempt(lambda: array, _call(tmp_path, "big"), (), {})
    assert value is array and payload is None
    assert outcome["status"] == "completed" and outcome["output"] is None
    assert outcome["handoff"] == {"source": "value", "what": "the output of checkpoint 'big'"}
    assert not tmp_path.joinpath("store", "objects").exists()

    value, outcome, payload = run_task_attempt(lambda: Blob(b"y" * 2 * INLINE_BYTES), _call(tmp_path, "blob"), (), {})
    assert value == Blob(b"y" * 2 * INLINE_BYTES) and outcome["handoff"]["source"] == "payload" and payload is not None
    assert not tmp_path.joinpath("store", "objects").exists()


def test_an_unserializable_output_fails_the_attempt_in_the_task(tmp_path):
    value, outcome, payload = run_task_attempt(threading.Lock, _call(tmp_path, "make_lock"), (), {})
    assert value is None and payload is None
    assert outcome["status"] == "failed" and "handoff" not in outcome
    assert outcome["error"]["origin"] == "user_code"
    assert outcome["error"]["type"] == "kitaru.storage.serializers.SerializationError"
    assert "checkpoint 'make_lock'" in outcome["error"]["message"]
