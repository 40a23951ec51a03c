"""Storage conformance: one suite on the local file system, S3 (moto), GCS (fake-gcs-server) and Azure (Azurite).

Every emulator is a real server on loopback, started once per session (see tests/emulators.py).
"""

import concurrent.futures
import hashlib
import os
import threading

import blake3
import numpy as np
import pytest

import kitaru.storage._store as store_module
from kitaru.errors import KitaruBackendError, KitaruFeatureNotAvailableError
from kitaru.storage import ObjectMeta, Storage, load_value, store_value

STORES = ["file", "s3", "gs", "abfs"]
every_store = pytest.mark.parametrize("store_url", STORES, indirect=True)
MIB = 1024 * 1024


@pytest.fixture
def storage(store_url):
    url, options = store_url
    return Storage(url, options)


def _path(storage, stored):
    return storage.fs._strip_protocol(stored.uri)


@every_store
def test_put_is_content_addressed_by_blake3_and_idempotent(storage):
    first = storage.put(b"hello")
    second = storage.put(b"hello")
    assert first == second
    assert (first.digest, first.algorithm) == (blake3.blake3(b"hello").hexdigest(), "blake3")
    assert first.uri.endswith(f"objects/{first.digest[:2]}/{first.digest}")
    assert bytes(storage.get(first.uri, first.digest)) == b"hello"


@every_store
def test_values_round_trip_and_records_name_the_algorithm(storage):
    meta = store_value(storage, {"answer": 42, "items": [1, 2, 3]})
    record = meta.to_dict()
    assert record["digest_algorithm"] == "blake3" and "sha256" not in record
    assert load_value(storage, record) == {"answer": 42, "items": [1, 2, 3]}


@every_store
def test_objects_written_with_sha256_stay_readable(storage):
    """A record from before BLAKE3 (a ``sha256`` key, the object named by its sha256) still loads, checked."""
    data = b'{"old": true}'
    digest = hashlib.sha256(data).hexdigest()
    path = storage.object_path(digest)
    storage.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    storage.fs.pipe_file(path, data)
    old_record = {
        "uri": storage.uri_for(path),
        "sha256": digest,
        "size": len(data),
        "serializer": "json",
        "type_path": "builtins:dict",
    }
    assert ObjectMeta.from_record(old_record).digest_algorithm == "sha256"
    assert load_value(storage, old_record) == {"old": True}
    storage.fs.pipe_file(path, b'{"old": false}')
    with pytest.raises(KitaruBackendError, match="corrupt.*sha256"):
        load_value(storage, old_record)


@every_store
def test_corruption_is_detected_on_load(storage):
    stored = storage.put(b"original bytes")
    storage.fs.pipe_file(_path(storage, stored), b"tampered bytes")
    with pytest.raises(KitaruBackendError, match="corrupt"):
        storage.get(stored.uri, stored.digest)
    with pytest.raises(KitaruBackendError, match="corrupt"):
        b"".join(storage.iter_chunks(stored.uri, stored.digest))


@every_store
def test_missing_object_is_a_clear_error(storage):
    stored = storage.put(b"soon gone")
    storage.fs.rm_file(_path(storage, stored))
    with pytest.raises(KitaruBackendError, match="missing"):
        storage.get(stored.uri, stored.digest)


@every_store
def test_listing_shows_every_object_once(storage):
    assert storage.list_objects() == []
    digests = {storage.put(f"object {i}".encode()).digest for i in range(5)}
    storage.put(b"object 0")
    assert storage.list_objects() == sorted(digests)


@every_store
def test_a_failed_upload_commits_nothing(storage, monkeypatch):
    """The stream breaks after 32 MiB, with parts already sent: nothing is visible, neither under the key nor in the listing."""
    real_chunks = store_module._chunks
    monkeypatch.setattr(store_module, "_REMOTE_BLOCK", 5 * MIB)  # S3's smallest part: parts go out before the break

    def broken(views):
        for number, chunk in enumerate(real_chunks(views)):
            if number == 2:
                raise ConnectionResetError("connection reset by peer")
            yield chunk

    monkeypatch.setattr(store_module, "_chunks", broken)
    data = os.urandom(40 * MIB)
    with pytest.raises(KitaruBackendError, match="connection reset"):
        storage.put(data)
    assert storage.list_objects() == []
    assert not storage.fs.exists(storage.object_path(blake3.blake3(data).hexdigest()))
    if storage.is_local:
        assert os.listdir(f"{storage.root}/tmp") == []


@every_store
def test_no_partial_object_is_ever_visible(storage):
    """A reader polling the key while a 40 MiB object is written sees nothing, then the whole object."""
    data = os.urandom(40 * MIB)
    path = storage.object_path(blake3.blake3(data).hexdigest())
    seen: list[int] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                seen.append(storage.fs.info(path)["size"])
            except FileNotFoundError:
                pass
            storage.fs.invalidate_cache()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        stored = storage.put(data)
    finally:
        done.set()
        watcher.join()
    assert stored.size == len(data)
    assert set(seen) <= {len(data)}, f"a partial object was visible: sizes {sorted(set(seen))}"


@every_store
def test_concurrent_writers_of_the_same_key(storage):
    """Four writers store the same 20 MiB at once: one object, whole, and every writer gets its address."""
    data = os.urandom(20 * MIB)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: storage.put(data), range(4)))
    assert len(set(results)) == 1
    assert storage.list_objects() == [results[0].digest]
    assert bytes(storage.get(results[0].uri, results[0].digest)) == data
    if storage.is_local:
        assert os.listdir(f"{storage.root}/tmp") == []


@every_store
def test_arrays_load_zero_copy_from_the_read_buffer(storage, monkeypatch):
    """A loaded array is a view of the buffer storage returned (mapped file or the one read buffer), not a copy."""
    array = np.arange(1_000_000, dtype=np.float64)
    meta = store_value(storage, array)
    buffers = []
    real_get = storage.get
    monkeypatch.setattr(storage, "get", lambda *args: buffers.append(real_get(*args)) or buffers[-1])
    loaded = load_value(storage, meta.to_dict())
    np.testing.assert_array_equal(loaded, array)
    assert np.shares_memory(loaded, np.frombuffer(buffers[0], dtype=np.uint8))


def _pattern(total: int, chunk: int, seed: bytes):
    """``total`` bytes in ``chunk``-sized pieces, each distinct, without ever holding more than one."""
    block = np.frombuffer(seed * (chunk // len(seed)), dtype=np.uint64).copy()
    for number in range(total // chunk):
        block[0] = number
        yield block.tobytes()


@every_store
def test_512_mib_objects_stream_in_and_out(storage):
    """512 MiB written from a stream and read back in chunks: the digest is checked, one chunk in memory at a time."""
    seed = os.urandom(MIB)
    hasher = blake3.blake3()
    for chunk in _pattern(512 * MIB, 8 * MIB, seed):
        hasher.update(chunk)
    stored = storage.put_stream(_pattern(512 * MIB, 8 * MIB, seed))
    assert (stored.digest, stored.size) == (hasher.hexdigest(), 512 * MIB)
    read = 0
    for chunk in storage.iter_chunks(stored.uri, stored.digest):
        assert len(chunk) <= 64 * MIB
        read += len(chunk)
    assert read == 512 * MIB
    storage.fs.rm_file(_path(storage, stored))


@pytest.mark.parametrize("store_url", ["s3", "gs", "abfs"], indirect=True)  # a local root is created on first write
def test_a_missing_bucket_is_one_clear_error(store_url):
    url, options = store_url
    scheme = url.split("://", 1)[0]
    storage = Storage(f"{scheme}://no-such-bucket-kitaru/prefix", options)
    with pytest.raises(KitaruBackendError, match="could not write to storage '.*no-such-bucket-kitaru"):
        storage.put(b"anything")


def test_local_writes_leave_no_temporary_files(tmp_path):
    storage = Storage(tmp_path.as_uri())
    for size in (0, 1, 1 << 20):
        storage.put(os.urandom(size))
    assert os.listdir(tmp_path / "tmp") == []


def test_failed_local_write_leaves_no_object(tmp_path, monkeypatch):
    storage = Storage(tmp_path.as_uri())

    def fail(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KitaruBackendError, match="disk full"):
        storage.put(b"never stored")
    assert storage.list_objects() == []
    assert os.listdir(tmp_path / "tmp") == []


def test_unknown_scheme_names_the_extra_or_the_schemes():
    with pytest.raises(KitaruFeatureNotAvailableError, match=r"file://, s3://, gs:// or abfs://"):
        Storage("nosuchscheme://bucket/prefix")


def test_large_local_objects_are_hashed_while_written(tmp_path):
    storage = Storage(tmp_path.as_uri())
    data = os.urandom(70 * MIB)
    stored = storage.put(data)
    assert stored.digest == blake3.blake3(data).hexdigest()
    assert bytes(storage.get(stored.uri, stored.digest)) == data
    assert storage.put(data) == stored  # a second copy is discarded, not stored twice
    assert os.listdir(tmp_path / "tmp") == []


def test_a_missing_filesystem_names_the_extra_to_install(monkeypatch):
    """As on a machine without gcsfs: the scheme's implementation cannot be imported."""
    import importlib

    registry = importlib.import_module("fsspec.registry")
    monkeypatch.setitem(registry.known_implementations, "gs", {"class": "kitaru_no_such_module.GCSFileSystem"})
    monkeypatch.delitem(registry._registry, "gs", raising=False)
    with pytest.raises(KitaruFeatureNotAvailableError, match=r"pip install 'kitaru\[gcs\]'"):
        Storage("gs://bucket/prefix")
