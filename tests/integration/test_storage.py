"""Storage conformance: the same suite on the local file system and on S3 (moto's server)."""

import hashlib
import os

import pytest

from kitaru.errors import KitaruBackendError, KitaruFeatureNotAvailableError
from kitaru.storage import Storage


@pytest.fixture(params=["file", "s3"])
def storage(request, tmp_path):
    if request.param == "file":
        return Storage(tmp_path.joinpath("store").as_uri())
    options = request.getfixturevalue("s3_server")
    return Storage(f"s3://kitaru/{tmp_path.name}", options)


def test_put_is_content_addressed_and_idempotent(storage):
    first = storage.put(b"hello")
    second = storage.put(b"hello")
    assert first == second
    assert first.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert first.uri.endswith(f"objects/{first.sha256[:2]}/{first.sha256}")
    assert bytes(storage.get(first.uri, first.sha256)) == b"hello"


def test_corruption_is_detected_on_load(storage):
    stored = storage.put(b"original bytes")
    storage.fs.pipe_file(storage.fs._strip_protocol(stored.uri), b"tampered bytes")
    with pytest.raises(KitaruBackendError, match="corrupt"):
        storage.get(stored.uri, stored.sha256)


def test_missing_object_is_a_clear_error(storage):
    stored = storage.put(b"soon gone")
    storage.fs.rm_file(storage.fs._strip_protocol(stored.uri))
    with pytest.raises(KitaruBackendError, match="missing"):
        storage.get(stored.uri, stored.sha256)


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
    assert not list((tmp_path / "objects").rglob("*")) or all(p.is_dir() for p in (tmp_path / "objects").rglob("*"))
    assert os.listdir(tmp_path / "tmp") == []


def test_missing_filesystem_names_the_extra():
    with pytest.raises(KitaruFeatureNotAvailableError, match=r"kitaru\[gcs\]"):
        Storage("gs://bucket/prefix")


def test_large_local_objects_are_hashed_while_written(tmp_path):
    storage = Storage(tmp_path.as_uri())
    data = os.urandom(70 * 1024 * 1024)
    stored = storage.put(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert bytes(storage.get(stored.uri, stored.sha256)) == data
    assert storage.put(data) == stored  # a second copy is discarded, not stored twice
    assert os.listdir(tmp_path / "tmp") == []
