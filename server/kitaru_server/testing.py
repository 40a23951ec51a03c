"""Test helpers for the server: a throwaway PostgreSQL from the machine's binaries, and the API on a thread.

``initdb`` refuses to run as root, so when this process is root the cluster is
created and started as the ``postgres`` user. The server listens on loopback
only, with ``fsync=off`` (its data is thrown away anyway).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["LocalPostgres", "free_port", "local_postgres", "postgres_binaries", "serve_in_thread"]

_SEARCH_PATH = ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


def postgres_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is not installed."""
    for directory in (*_SEARCH_PATH, *os.environ.get("PATH", "").split(os.pathsep)):
        if directory and Path(directory, "initdb").is_file() and Path(directory, "pg_ctl").is_file():
            return Path(directory)
    return None


@dataclasses.dataclass
class LocalPostgres:
    """A running server: ``url(database)`` gives a SQLAlchemy URL for one of its databases."""

    port: int
    directory: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database` (its connections are closed first)."""
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def restart(self) -> None:
        """Restart the server with its options (a fast shutdown: every open connection is cut)."""
        binaries = postgres_binaries()
        assert binaries is not None  # it runs
        log = self.directory / "log"
        command = [str(binaries / "pg_ctl"), "-D", str(self.directory / "data"), "-l", str(log), "-m", "fast", "-w", "restart"]
        _run([*_run_as_postgres(self.directory), *command], log)

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(statement)


@contextlib.contextmanager
def local_postgres(*, max_connections: int = 300) -> Iterator[LocalPostgres]:
    """Start a fresh PostgreSQL cluster on a free loopback port; stop and delete it afterwards.

    Raises:
        FileNotFoundError: PostgreSQL's binaries are not installed.
        RuntimeError: the cluster could not be created or started (its log is in the message).
    """
    binaries = postgres_binaries()
    if binaries is None:
        raise FileNotFoundError(
            "PostgreSQL's initdb and pg_ctl were not found; install PostgreSQL (e.g. apt-get install postgresql)."
        )
    directory = Path(tempfile.mkdtemp(prefix="kitaru-pg-"))
    as_postgres = _run_as_postgres(directory)
    data, log = directory / "data", directory / "log"
    port = free_port()
    try:
        _run(
            [
                *as_postgres,
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            log,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c fsync=off -c synchronous_commit=off "
            f"-c full_page_writes=off -c max_connections={max_connections}"
        )
        _run([*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start"], log)
        try:
            yield LocalPostgres(port=port, directory=directory)
        finally:
            subprocess.run(
                [*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run_as_postgres(directory: Path) -> list[str]:
    if os.geteuid() != 0:
        return []
    shutil.chown(directory, user="postgres")
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str], log: Path) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        server_log = log.read_text()[-2000:] if log.exists() else ""
        program = next(Path(part).name for part in command if part.endswith(("initdb", "pg_ctl")))
        raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr[-2000:]} {server_log}".strip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a background thread; yields its base URL, stops it afterwards."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=2, timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"kitaru-api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the API server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
