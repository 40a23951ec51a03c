"""Content-addressed object storage on any fsspec filesystem.

Objects live at ``<root>/objects/<digest[:2]>/<digest>``, named by their BLAKE3 digest
(objects written with sha256 by earlier versions stay readable: each record names its
algorithm). A write never leaves a partial object under that key:

- local file systems: the bytes go to ``<root>/tmp/`` while they are hashed, then are
  renamed into place;
- object stores (S3, GCS, Azure): bytes held in memory are hashed first (one fast pass)
  and sent as a single PUT or a multipart/block upload, invisible until completed and
  aborted on error; a stream of unknown content is spilled to a local temporary file
  while hashed, then uploaded the same way.

Every load checks the digest.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from kitaru.errors import KitaruBackendError, KitaruError, KitaruFeatureNotAvailableError
from kitaru.storage._brokered import Renewal, brokered_stack
from kitaru.storage._digest import DEFAULT_ALGORITHM, digest_of, new_hasher

__all__ = ["Storage", "StoredObject", "open_storage"]

_CHUNK = 16 * 1024 * 1024
_REMOTE_BLOCK = 64 * 1024 * 1024  # multipart part / read size on object stores: fewer round trips, bounded memory
_OVERLAP_THRESHOLD = 4 * _CHUNK  # below this, hashing first and skipping known objects is cheaper
_hash_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kitaru-digest")
_EXTRA_FOR_PROTOCOL = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure", "abfss": "azure"}


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """Where an object was stored and what it holds."""

    uri: str
    digest: str
    size: int
    algorithm: str = DEFAULT_ALGORITHM


class Storage:
    """One storage root (an fsspec URL) holding content-addressed objects."""

    def __init__(self, url: str, options: dict[str, Any] | None = None, *, renewal: Renewal | None = None) -> None:
        self.url = url.rstrip("/")
        self._renewal = renewal
        self._renew_lock = threading.Lock()
        if self.url.startswith(("gs://", "gcs://")) and "gcsfs" not in sys.modules:
            # gcsfs's experimental bucket-type probe stalls a minute per bucket on endpoints that lack it (emulators).
            os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        self._connect(renewal.fetch() if renewal is not None else options or {})
        self.is_local = "file" in _protocols(self.fs)
        self._directories: set[str] = set()

    def _connect(self, options: dict[str, Any]) -> None:
        import fsspec

        try:
            self.fs, root = fsspec.core.url_to_fs(self.url, **_fsspec_options(self.url, options))
        except (ImportError, ValueError) as exc:
            protocol = self.url.split("://", 1)[0] if "://" in self.url else "file"
            extra = _EXTRA_FOR_PROTOCOL.get(protocol)
            hint = f"pip install 'kitaru[{extra}]'" if extra else "use a file://, s3://, gs:// or abfs:// URL"
            raise KitaruFeatureNotAvailableError(
                f"storage URL {self.url!r} needs the filesystem for {protocol!r}, which is not installed ({exc}); {hint}."
            ) from None
        self.root = root.rstrip("/")

    def _fresh(self) -> None:
        """Renew brokered credentials shortly before they expire (a long flow goes on with fresh ones)."""
        if self._renewal is not None and self._renewal.due():
            with self._renew_lock:
                if self._renewal.due():
                    self._connect(self._renewal.fetch())

    def object_path(self, digest: str) -> str:
        return f"{self.root}/objects/{digest[:2]}/{digest}"

    def uri_for(self, path: str) -> str:
        return self.fs.unstrip_protocol(path)

    def put(self, data: bytes | memoryview) -> StoredObject:
        """Store ``data`` under its BLAKE3 digest (a no-op if that object is already there)."""
        return self.put_parts([data])

    def put_parts(self, parts: list[bytes | memoryview]) -> StoredObject:
        """Store the concatenation of ``parts`` without joining them in memory first."""
        views = [memoryview(part).cast("B") for part in parts]
        size = sum(view.nbytes for view in views)
        self._fresh()
        with self._write_errors():
            if self.is_local and size >= _OVERLAP_THRESHOLD:
                digest = self._write_local_while_hashing(_chunks(views))
            else:
                hasher = new_hasher(parallel=size >= _OVERLAP_THRESHOLD)
                for view in views:
                    hasher.update(view)
                digest = hasher.hexdigest()
                path = self.object_path(digest)
                if not self.fs.exists(path):
                    self._write_atomically(path, views)
        return StoredObject(self.uri_for(self.object_path(digest)), digest, size)

    def put_stream(self, chunks: Iterable[bytes | memoryview]) -> StoredObject:
        """Store a stream of byte chunks of unknown total size, hashing them as they are written.

        Only one chunk is in memory at a time (a chunk must not change once yielded: it may still be
        hashing). On object stores the stream is spilled to a local temporary file first (its name is
        known only at the end), then uploaded under its digest.
        """
        self._fresh()
        with self._write_errors():
            if self.is_local:
                digest, size = self._write_local_while_hashing(chunks, count=True)
                return StoredObject(self.uri_for(self.object_path(digest)), digest, size)
            import tempfile

            with tempfile.TemporaryFile(prefix="kitaru-spill-") as spill:
                hasher = new_hasher()
                size = 0
                for chunk in chunks:
                    hasher.update(chunk)
                    size += spill.write(chunk)
                digest = hasher.hexdigest()
                path = self.object_path(digest)
                if not self.fs.exists(path):
                    spill.flush()
                    mapped = _map_handle(spill)
                    try:
                        self._write_atomically(path, [mapped])
                    finally:
                        mapped.release()
        return StoredObject(self.uri_for(path), digest, size)

    def _write_atomically(self, path: str, views: list[memoryview]) -> None:
        if not self.is_local:
            try:
                self._upload(path, views)
            except Exception:
                # Concurrent writers of one key race (Azure drops the loser's uncommitted blocks); the key names
                # the content, so the winner's whole object is exactly what this writer meant to store.
                if not self._has_whole(path, sum(view.nbytes for view in views)):
                    raise
            return
        tmp = self._temp_path()
        try:
            with open(tmp, "wb") as handle:
                for chunk in _chunks(views):
                    handle.write(chunk)
            self._move_into_place(tmp, path)
        except BaseException:
            _discard(tmp)
            raise

    def _has_whole(self, path: str, size: int) -> bool:
        self.fs.invalidate_cache(path)
        try:
            return self.fs.info(path)["size"] == size
        except Exception:  # noqa: BLE001 - unreachable or missing: the write's own error is the one to report
            return False

    def _upload(self, path: str, views: list[memoryview]) -> None:
        """One PUT, or a multipart/block upload committed only after its last part (aborted on any error)."""
        handle = self.fs.open(path, "wb", block_size=_REMOTE_BLOCK)
        try:
            for chunk in _chunks(views):
                handle.write(chunk)
        except BaseException:
            _abort_upload(handle)
            raise
        handle.close()

    def _write_local_while_hashing(self, chunks: Iterable[bytes | memoryview], *, count: bool = False) -> Any:
        """Write a large object to a temporary file while another thread hashes it, then rename it into place.

        BLAKE3 and file writes both release the GIL, so the digest costs little more than the
        write; the name is known only at the end, hence the rename.
        """
        hasher = new_hasher()
        tmp = self._temp_path()
        size = 0
        try:
            with open(tmp, "wb") as handle:
                hashing = None
                for chunk in chunks:
                    if hashing is not None:
                        hashing.result()
                    hashing = _hash_pool.submit(hasher.update, chunk)
                    size += handle.write(chunk)
                if hashing is not None:
                    hashing.result()
            digest = hasher.hexdigest()
            path = self.object_path(digest)
            if os.path.exists(path):
                _discard(tmp)
            else:
                self._move_into_place(tmp, path)
            return (digest, size) if count else digest
        except BaseException:
            _discard(tmp)
            raise

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

    def _write_errors(self) -> Any:
        return _StorageErrors(self.url, "write to")

    def get(self, uri: str, digest: str, algorithm: str = DEFAULT_ALGORITHM) -> memoryview:
        """Read an object and check its digest; local files are memory-mapped, remote objects read into one buffer.

        Either way the bytes are not copied again: serializers load arrays and tables from this buffer.
        """
        self._fresh()
        path = self.fs._strip_protocol(uri)
        with _StorageErrors(self.url, "read from", uri):
            data = _map_file(path) if self.is_local else memoryview(self.fs.cat_file(path))
        actual = digest_of(data, algorithm)
        if actual != digest:
            raise _corrupt(uri, algorithm, actual, digest)
        return data

    def iter_chunks(self, uri: str, digest: str, algorithm: str = DEFAULT_ALGORITHM) -> Iterator[bytes]:
        """Stream an object in chunks; the digest is checked when the last chunk has been read (raises then)."""
        self._fresh()
        path = self.fs._strip_protocol(uri)
        hasher = new_hasher(algorithm)
        block = _CHUNK if self.is_local else _REMOTE_BLOCK
        with _StorageErrors(self.url, "read from", uri), self.fs.open(path, "rb", block_size=block) as handle:
            while chunk := handle.read(block):
                hasher.update(chunk)
                yield chunk
        if hasher.hexdigest() != digest:
            raise _corrupt(uri, algorithm, hasher.hexdigest(), digest)

    def list_objects(self) -> list[str]:
        """The digests of every object under this root."""
        self._fresh()
        with _StorageErrors(self.url, "list"):
            try:
                paths = self.fs.find(f"{self.root}/objects")
            except FileNotFoundError:
                return []
        return sorted(path.rsplit("/", 1)[-1] for path in paths)

    def exists(self, uri: str) -> bool:
        self._fresh()
        return bool(self.fs.exists(self.fs._strip_protocol(uri)))


class _StorageErrors:
    """Turns a storage library's exception into one clear :class:`KitaruBackendError` line."""

    def __init__(self, url: str, verb: str, uri: str | None = None) -> None:
        self.url, self.verb, self.uri = url, verb, uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, KitaruError):
            return False
        if isinstance(exc, FileNotFoundError) and self.uri is not None:
            raise KitaruBackendError(
                f"object {self.uri} is missing from storage {self.url!r}; it was deleted or the storage URL changed."
            ) from None
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise KitaruBackendError(
            f"could not {self.verb} storage {self.url!r} ({type(exc).__name__}: {detail}); "
            "check that it exists, is reachable and that the credentials allow it."
        ) from exc


def _corrupt(uri: str, algorithm: str, actual: str, expected: str) -> KitaruBackendError:
    return KitaruBackendError(
        f"object {uri} is corrupt ({algorithm} {actual}, expected {expected}); restore it from a backup or re-run the call."
    )


def _fsspec_options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """fsspec's options from a stack's: a brokered GCS ``access_token`` becomes the credentials object gcsfs takes
    (given as a plain string, gcsfs would look it up at Google's token-info endpoint first)."""
    if "access_token" not in options or not url.startswith(("gs://", "gcs://")):
        return options
    from google.oauth2.credentials import Credentials

    rest = {key: value for key, value in options.items() if key != "access_token"}
    return {**rest, "token": Credentials(options["access_token"])}


def _chunks(views: list[memoryview]) -> Iterator[memoryview]:
    return (view[offset : offset + _CHUNK] for view in views for offset in range(0, view.nbytes, _CHUNK))


def _abort_upload(handle: Any) -> None:
    """Throw away an unfinished upload so that nothing is committed (closing would complete it)."""
    try:
        handle.discard()
    finally:
        handle.closed = True


def _discard(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def _map_file(path: str) -> memoryview:
    with open(path, "rb") as handle:
        return _map_handle(handle)


def _map_handle(handle: Any) -> memoryview:
    import mmap

    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        return memoryview(b"")
    return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


_cache: dict[tuple[str, ...], Storage] = {}
_cache_lock = threading.Lock()


def open_storage(
    url: str, options: dict[str, Any] | None = None, *, service_url: str | None = None, api_key: str | None = None
) -> Storage:
    """A cached :class:`Storage` for ``url`` and ``options``.

    When the options say the stack's server brokers its credentials, they are asked of the server at
    ``service_url`` (default: this process's connection) and renewed before they expire.
    """
    import json

    stack = brokered_stack(options)
    key = (url, stack, service_url or "") if stack else (url, json.dumps(options or {}, sort_keys=True, default=str))
    with _cache_lock:
        storage = _cache.get(key)
        if storage is None:
            renewal = Renewal(stack, service_url, api_key) if stack else None
            storage = _cache[key] = Storage(url, None if stack else options, renewal=renewal)
        return storage
