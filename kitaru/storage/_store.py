"""Content-addressed object storage on any fsspec filesystem.

Objects live at ``<root>/objects/<sha256[:2]>/<sha256>``. A write never leaves a
partial object under that key: on local file systems it goes to
``<root>/tmp/`` and is renamed into place; on object stores it is a single PUT
(or a multipart upload, which is invisible until completed). Every load checks
the sha256.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import threading
import uuid
from typing import Any

from kitaru.errors import KitaruBackendError, KitaruFeatureNotAvailableError

__all__ = ["Storage", "StoredObject", "open_storage"]

_CHUNK = 16 * 1024 * 1024
_OVERLAP_THRESHOLD = 4 * _CHUNK  # below this, hashing first and skipping known objects is cheaper
_hash_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kitaru-sha256")
_EXTRA_FOR_PROTOCOL = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure", "abfss": "azure"}


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """Where an object was stored and what it holds."""

    uri: str
    sha256: str
    size: int


class Storage:
    """One storage root (an fsspec URL) holding content-addressed objects."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **(options or {}))
        except (ImportError, ValueError) as exc:
            protocol = self.url.split("://", 1)[0] if "://" in self.url else "file"
            extra = _EXTRA_FOR_PROTOCOL.get(protocol)
            hint = f"pip install 'kitaru[{extra}]'" if extra else "use a file://, s3://, gs:// or abfs:// URL"
            raise KitaruFeatureNotAvailableError(
                f"storage URL {url!r} needs the filesystem for {protocol!r}, which is not installed ({exc}); {hint}."
            ) from None
        self.is_local = "file" in _protocols(self.fs)
        self._directories: set[str] = set()
        self.root = self.root.rstrip("/")

    def object_path(self, sha256: str) -> str:
        return f"{self.root}/objects/{sha256[:2]}/{sha256}"

    def uri_for(self, path: str) -> str:
        return self.fs.unstrip_protocol(path)

    def put(self, data: bytes | memoryview) -> StoredObject:
        """Store ``data`` under its sha256 (a no-op if that object is already there)."""
        view = memoryview(data).cast("B")
        try:
            if self.is_local and view.nbytes >= _OVERLAP_THRESHOLD:
                digest = self._write_local_while_hashing([view])
            else:
                digest = hashlib.sha256(view).hexdigest()
                path = self.object_path(digest)
                if not self.fs.exists(path):
                    self._write_atomically(path, view)
        except OSError as exc:
            raise KitaruBackendError(
                f"could not write to storage {self.url!r} ({exc}); check that it is reachable and writable."
            ) from exc
        return StoredObject(self.uri_for(self.object_path(digest)), digest, view.nbytes)

    def _write_atomically(self, path: str, view: memoryview) -> None:
        if not self.is_local:
            self.fs.pipe_file(path, bytes(view))
            return
        tmp = self._temp_path()
        try:
            with open(tmp, "wb") as handle:
                handle.write(view)
            self._move_into_place(tmp, path)
        except BaseException:
            _discard(tmp)
            raise

    def put_parts(self, parts: list[memoryview]) -> StoredObject:
        """Store the concatenation of ``parts`` without joining them in memory first."""
        views = [memoryview(part).cast("B") for part in parts]
        size = sum(view.nbytes for view in views)
        try:
            if self.is_local:
                digest = self._write_local_while_hashing(views)
            else:
                return self.put(b"".join(views))
        except OSError as exc:
            raise KitaruBackendError(
                f"could not write to storage {self.url!r} ({exc}); check that it is reachable and writable."
            ) from exc
        return StoredObject(self.uri_for(self.object_path(digest)), digest, size)

    def _write_local_while_hashing(self, views: list[memoryview]) -> str:
        """Write a large object to a temporary file while another thread hashes it, then rename it into place.

        Both ``hashlib`` and file writes release the GIL, so the digest costs little
        more than the write; the name is known only at the end, hence the rename.
        """
        hasher = hashlib.sha256()
        tmp = self._temp_path()
        chunks = (view[offset : offset + _CHUNK] for view in views for offset in range(0, view.nbytes, _CHUNK))
        try:
            with open(tmp, "wb") as handle:
                hashing = None
                for chunk in chunks:
                    if hashing is not None:
                        hashing.result()
                    hashing = _hash_pool.submit(hasher.update, chunk)
                    handle.write(chunk)
                if hashing is not None:
                    hashing.result()
            digest = hasher.hexdigest()
            path = self.object_path(digest)
            if os.path.exists(path):
                _discard(tmp)
            else:
                self._move_into_place(tmp, path)
            return digest
        except BaseException:
            _discard(tmp)
            raise

    def put_written(self, write: Any, *, what: str = "value") -> StoredObject:
        """Store what ``write(sink)`` writes to a pyarrow sink (local storage): written in place, hashed from the file."""
        import pyarrow as pa

        from kitaru.storage.serializers import SerializationError

        tmp = self._temp_path()
        try:
            with pa.OSFile(tmp, "wb") as sink:
                try:
                    write(sink)
                except (pa.ArrowException, TypeError, ValueError) as exc:
                    raise SerializationError(f"{what} could not be written as Arrow IPC ({exc}).") from None
            data = _map_file(tmp)
            digest = hashlib.sha256(data).hexdigest()
            size = data.nbytes
            data.release()
            path = self.object_path(digest)
            if os.path.exists(path):
                _discard(tmp)
            else:
                self._move_into_place(tmp, path)
        except OSError as exc:
            _discard(tmp)
            raise KitaruBackendError(
                f"could not write to storage {self.url!r} ({exc}); check that it is reachable and writable."
            ) from exc
        except BaseException:
            _discard(tmp)
            raise
        return StoredObject(self.uri_for(path), digest, size)

    def _temp_path(self) -> str:
        tmp_dir = f"{self.root}/tmp"
        self._ensure_directory(tmp_dir)
        return f"{tmp_dir}/{uuid.uuid4().hex}"

    def _move_into_place(self, tmp: str, path: str) -> None:
        self._ensure_directory(os.path.dirname(path))
        os.replace(tmp, path)

    def _ensure_directory(self, directory: str) -> None:
        if directory not in self._directories:  # one stat per write saved; directories are never removed under us
            os.makedirs(directory, exist_ok=True)
            self._directories.add(directory)

    def get(self, uri: str, sha256: str) -> memoryview:
        """Read an object and check its sha256; local files are memory-mapped (zero-copy)."""
        path = self.fs._strip_protocol(uri)
        try:
            if self.is_local:
                data = _map_file(path)
            else:
                data = memoryview(self.fs.cat_file(path))
        except FileNotFoundError:
            raise KitaruBackendError(
                f"object {uri} is missing from storage {self.url!r}; it was deleted or the storage URL changed."
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise KitaruBackendError(
                f"object {uri} is corrupt (sha256 {actual}, expected {sha256}); restore it from a backup or re-run the call."
            )
        return data

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(self.fs._strip_protocol(uri)))


def _discard(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def _map_file(path: str) -> memoryview:
    import mmap

    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


_cache: dict[tuple[str, str], Storage] = {}
_cache_lock = threading.Lock()


def open_storage(url: str, options: dict[str, Any] | None = None) -> Storage:
    """A cached :class:`Storage` for ``url`` and ``options``."""
    import json

    key = (url, json.dumps(options or {}, sort_keys=True, default=str))
    with _cache_lock:
        storage = _cache.get(key)
        if storage is None:
            storage = _cache[key] = Storage(url, options)
        return storage
