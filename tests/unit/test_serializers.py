"""Serializers: JSON, pydantic, Arrow IPC (zero-copy loads), cloudpickle, and registered ones."""

import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pydantic
import pytest
from values import assert_same_value

from kitaru.storage import SerializationError, Storage, load_value, register_serializer, store_value
from kitaru.storage.serializers import dumps, loads


class Report(pydantic.BaseModel):
    title: str
    score: float


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


@pytest.fixture
def storage(tmp_path):
    return Storage(tmp_path.as_uri())


@pytest.mark.parametrize(
    ("value", "serializer"),
    [
        ({"a": [1, 2.5, None, True, "x"]}, "json"),
        ("text", "json"),
        (Report(title="t", score=0.5), "pydantic"),
        ((1, 2), "cloudpickle"),
        ({1: "non-str key"}, "cloudpickle"),
        (np.arange(10, dtype=np.float32), "arrow"),
        (pa.table({"a": [1, 2, 3]}), "arrow"),
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "arrow"),
    ],
)
def test_round_trip_through_storage(storage, value, serializer):
    meta = store_value(storage, value)
    assert meta.serializer == serializer
    loaded = load_value(storage, meta)
    assert_same_value(loaded, value)
    assert type(loaded) is type(value) or isinstance(value, (np.ndarray, pd.DataFrame, pa.Table))


def test_numpy_loads_zero_copy_from_the_stored_file(storage):
    meta = store_value(storage, np.ones((256, 256)))
    loaded = load_value(storage, meta)
    assert not loaded.flags.owndata  # a view on the memory-mapped object, not a copy


def test_registered_serializer_wins_and_round_trips(storage):
    register_serializer(
        "point",
        types=Point,
        dumps=lambda p: f"{p.x},{p.y}".encode(),
        loads=lambda data, _type: Point(*map(int, bytes(data).split(b","))),
    )
    meta = store_value(storage, Point(3, 4))
    assert meta.serializer == "point"
    loaded = load_value(storage, meta)
    assert (loaded.x, loaded.y) == (3, 4)


def test_unserializable_value_names_type_and_fix():
    with pytest.raises(SerializationError) as info:
        dumps(threading.Lock(), what="the output of checkpoint 'make_lock'")
    message = str(info.value)
    assert "make_lock" in message and "lock" in message.lower() and "register_serializer" in message


def test_unknown_serializer_name_says_what_to_import():
    with pytest.raises(SerializationError, match="register_serializer"):
        loads("nope", b"")


def test_large_arrays_and_tables_are_written_from_their_own_memory(storage):
    from kitaru.storage import LARGE_VALUE_BYTES

    array = np.arange(LARGE_VALUE_BYTES // 8 + 5, dtype=np.int64)
    meta = store_value(storage, array)
    assert meta.serializer == "arrow" and meta.size > array.nbytes
    np.testing.assert_array_equal(load_value(storage, meta), array)
    table = pa.table({"x": array})
    loaded = load_value(storage, store_value(storage, table))
    assert loaded.equals(table)
    small = np.arange(10)
    assert load_value(storage, store_value(storage, small)).tolist() == small.tolist()


def test_large_tables_and_frames_are_stored_without_a_serialized_copy(storage):
    from kitaru.storage import LARGE_VALUE_BYTES
    from kitaru.storage.serializers import _arrow_dumps

    column = np.arange(LARGE_VALUE_BYTES // 8 + 5, dtype=np.int64)
    table = pa.table({"x": column})
    allocated = pa.total_allocated_bytes()
    meta = store_value(storage, table)
    assert pa.total_allocated_bytes() - allocated < 2**20
    assert meta.serializer == "arrow" and load_value(storage, meta).equals(table)
    frame = pd.DataFrame({"x": column, "y": column * 0.5})
    frame_meta = store_value(storage, frame)
    assert frame_meta.serializer == "arrow" and frame_meta.type_path == "pandas:DataFrame"
    pd.testing.assert_frame_equal(load_value(storage, frame_meta), frame)
    # The same bytes as the in-memory serializer's, so both paths name a value by the same digest.
    assert bytes(storage.get(frame_meta.uri, frame_meta.digest)) == bytes(_arrow_dumps(frame))
