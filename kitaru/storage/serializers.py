"""Turning values into bytes and back.

Built-in serializers, tried in order after any registered ones:

- ``json``: JSON-native values (``None``, bool, int, float, str, and lists or
  str-keyed dicts of those);
- ``pydantic``: pydantic models, by their JSON plus the model's import path;
- ``arrow``: ``pyarrow.Table``, numeric ``numpy.ndarray`` and pandas
  DataFrames as Arrow IPC, loaded zero-copy from the stored buffer;
- ``cloudpickle``: everything else.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from collections.abc import Callable
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = [
    "Serializer",
    "SerializationError",
    "arrow_parts",
    "arrow_writer",
    "bytes_in_place",
    "dumps",
    "loads",
    "register_serializer",
    "type_path_of",
]

Buffer = bytes | memoryview


class SerializationError(KitaruUsageError):
    """A value could not be serialized or deserialized."""


@dataclasses.dataclass(frozen=True)
class Serializer:
    """A named pair of functions turning values of some types into bytes and back.

    Attributes:
        name: Stored with every object; it selects ``loads`` when reading.
        handles: Whether this serializer takes a given value.
        dumps: Value to a bytes-like object.
        loads: ``(buffer, type_path)`` back to the value.
    """

    name: str
    handles: Callable[[Any], bool]
    dumps: Callable[[Any], Buffer]
    loads: Callable[[Buffer, str], Any]


_registered: list[Serializer] = []


def register_serializer(
    name: str,
    *,
    types: type | tuple[type, ...],
    dumps: Callable[[Any], Buffer],
    loads: Callable[[Buffer, str], Any],
) -> Serializer:
    """Register a serializer for values of ``types``; it wins over the built-in ones.

    Example::

        kitaru.register_serializer("point", types=Point,
                                   dumps=lambda p: f"{p.x},{p.y}".encode(),
                                   loads=lambda b, _: Point(*map(float, bytes(b).split(b","))))

    Register it in a module the checkpoint's module imports, so Ray workers have it too.
    """
    if any(s.name == name for s in _BUILTIN):
        raise KitaruUsageError(f"serializer name {name!r} is built in; choose another name.")
    serializer = Serializer(name, lambda value: isinstance(value, types), dumps, loads)
    _registered[:] = [s for s in _registered if s.name != name]
    _registered.insert(0, serializer)
    return serializer


def type_path_of(value: Any) -> str:
    """The import path (``module:qualname``) of the value's type."""
    cls = type(value)
    return f"{cls.__module__}:{cls.__qualname__}"


def dumps(value: Any, *, what: str = "value") -> tuple[str, Buffer]:
    """Serialize ``value``; returns ``(serializer name, bytes-like)``.

    Raises:
        SerializationError: naming ``what``, the type, and how to register a serializer.
    """
    for serializer in (*_registered, *_BUILTIN):
        if serializer.handles(value):
            try:
                return serializer.name, serializer.dumps(value)
            except Exception as exc:  # noqa: BLE001 - any failure means "cannot serialize"
                raise SerializationError(
                    f"{what} of type {type_path_of(value)} could not be serialized by {serializer.name!r} "
                    f"({type(exc).__name__}: {exc}). Return a serializable value, or register a serializer: "
                    f"kitaru.register_serializer('name', types={type(value).__name__}, dumps=..., loads=...).",
                    type_path=type_path_of(value),
                ) from None
    raise AssertionError("the cloudpickle serializer handles every value")  # pragma: no cover


def loads(serializer_name: str, data: Buffer, type_path: str = "") -> Any:
    """Deserialize bytes written by the serializer named ``serializer_name``."""
    for serializer in (*_registered, *_BUILTIN):
        if serializer.name == serializer_name:
            return serializer.loads(data, type_path)
    raise SerializationError(
        f"no serializer named {serializer_name!r} is registered in this process; import the module "
        "that calls kitaru.register_serializer for it before loading."
    )


def _import_type(type_path: str) -> Any:
    from kitaru._values import resolve_path

    return resolve_path(type_path)


# --- json -----------------------------------------------------------------------------------

_JSON_SCALARS = (str, int, float, bool, type(None))


def is_json_native(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is list:
        return all(is_json_native(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(k) is str and is_json_native(v, depth + 1) for k, v in value.items())
    return False


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _json_loads(data: Buffer, _type_path: str) -> Any:
    return json.loads(bytes(data))


# --- pydantic -------------------------------------------------------------------------------


def _is_pydantic_model(value: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(value, pydantic.BaseModel):
        return False
    # A model defined in __main__ cannot be imported by another process: pickle it instead.
    return type(value).__module__ != "__main__"


def _pydantic_dumps(value: Any) -> bytes:
    return value.model_dump_json().encode()


def _pydantic_loads(data: Buffer, type_path: str) -> Any:
    return _import_type(type_path).model_validate_json(bytes(data))


# --- arrow ----------------------------------------------------------------------------------


def _arrow_kind(value: Any) -> str | None:
    """``ndarray``, ``table`` or ``pandas`` for values stored as Arrow IPC (modules already imported by the user)."""
    numpy, pyarrow, pandas = (sys.modules.get(name) for name in ("numpy", "pyarrow", "pandas"))
    if numpy is not None and isinstance(value, numpy.ndarray):
        return "ndarray" if value.dtype.kind in "biufc" else None
    if pyarrow is not None and isinstance(value, pyarrow.Table):
        return "table"
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return "pandas"
    return None


def bytes_in_place(value: Any) -> int:
    """The size of an array's or table's data; of a data frame only when its columns hold no Python objects.

    A data frame has no ``nbytes``: its columns' memory is summed instead. One holding
    Python objects counts as 0 (it is pickled, like any other value). Other values: 0.
    """
    if not hasattr(value, "nbytes") and hasattr(value, "memory_usage") and hasattr(value, "dtypes"):
        if any(getattr(dtype, "hasobject", False) for dtype in value.dtypes):
            return 0
        return int(value.memory_usage(deep=False).sum())
    nbytes = getattr(value, "nbytes", 0)
    return nbytes if isinstance(nbytes, int) else 0


def arrow_parts(value: Any) -> list[memoryview] | None:
    """A value stored as Arrow IPC as the list of buffers making up its stored bytes, without copying its data.

    Small IPC framing comes as fresh bytes; an array's or table's data buffers are views of
    its own memory (a data frame is converted to a table first). Storing these parts writes
    the value with no serialized copy in memory. ``None`` for values not stored as Arrow, or
    when a registered serializer claims the value, or when Arrow cannot write it (serializing
    it the ordinary way then reports why).
    """
    tensor = _tensor_parts(value)
    if tensor is not None:
        return tensor
    write = arrow_writer(value)
    if write is None:
        return None
    import pyarrow as pa

    collected = _Collector()
    try:
        write(pa.PythonFile(collected, mode="w"))
    except (pa.ArrowException, TypeError, ValueError, NotImplementedError):
        return None
    return collected.parts


class _Collector:
    """A write-only file keeping what is written to it: Arrow hands its data buffers over without a copy."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[memoryview] = []
        self._size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.parts.append(view)
        self._size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def _tensor_parts(value: Any) -> list[memoryview] | None:
    """A C-contiguous numeric array as the Arrow IPC tensor it is stored as: a small header, then the array's own memory."""
    if (
        any(s.handles(value) for s in _registered)
        or _arrow_kind(value) != "ndarray"
        or not value.flags.c_contiguous
        or not value.nbytes
    ):
        return None
    import pyarrow as pa

    tensor = pa.Tensor.from_numpy(value)
    counter = pa.MockOutputStream()
    pa.ipc.write_tensor(tensor, counter)
    header = pa.allocate_buffer(counter.size() - value.nbytes)
    try:
        pa.ipc.write_tensor(tensor, pa.FixedSizeBufferWriter(header))
    except OSError:
        pass  # expected: the buffer holds exactly the header, so writing the body stops there
    else:
        return None  # an unexpected layout: take the ordinary path
    return [memoryview(header), memoryview(value).cast("B")]


def arrow_writer(value: Any) -> Callable[[Any], None] | None:
    """For values stored as Arrow IPC: a function writing them to a pyarrow sink without copying them first.

    ``None`` for other values, or when a registered serializer claims the value.
    """
    if any(s.handles(value) for s in _registered) or _arrow_kind(value) is None:
        return None
    import pyarrow as pa

    if _arrow_kind(value) == "ndarray":
        import numpy as np

        tensor = pa.Tensor.from_numpy(np.ascontiguousarray(value))
        return lambda sink: pa.ipc.write_tensor(tensor, sink)
    table = value if _arrow_kind(value) == "table" else pa.Table.from_pandas(value)

    def write(sink: Any) -> None:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)

    return write


def _arrow_dumps(value: Any) -> memoryview:
    import pyarrow as pa

    write = arrow_writer(value)
    assert write is not None
    # Measure first (nothing is copied), then write once into a buffer of exactly that size:
    # a growing buffer would copy a large value several times.
    counter = pa.MockOutputStream()
    write(counter)
    buffer = pa.allocate_buffer(counter.size())
    write(pa.FixedSizeBufferWriter(buffer))
    return memoryview(buffer)


def _arrow_loads(data: Buffer, type_path: str) -> Any:
    import pyarrow as pa

    source = pa.BufferReader(pa.py_buffer(data))
    if type_path.endswith(":ndarray"):
        return pa.ipc.read_tensor(source).to_numpy()
    table = pa.ipc.open_stream(source).read_all()
    return table.to_pandas() if type_path.endswith(":DataFrame") else table


# --- cloudpickle ----------------------------------------------------------------------------


def _pickle_dumps(value: Any) -> bytes:
    import cloudpickle

    buffer = io.BytesIO()
    cloudpickle.dump(value, buffer, protocol=5)
    return buffer.getvalue()


def _pickle_loads(data: Buffer, _type_path: str) -> Any:
    import cloudpickle

    return cloudpickle.loads(data)


_BUILTIN = (
    Serializer("json", is_json_native, _json_dumps, _json_loads),
    Serializer("pydantic", _is_pydantic_model, _pydantic_dumps, _pydantic_loads),
    Serializer("arrow", lambda value: _arrow_kind(value) is not None, _arrow_dumps, _arrow_loads),
    Serializer("cloudpickle", lambda _value: True, _pickle_dumps, _pickle_loads),
)
