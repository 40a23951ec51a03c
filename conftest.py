"""Shared test fixtures: one Ray session for the whole run, an isolated KITARU_HOME per test,
and real services (an S3 emulator) started on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import sys

import pytest

# Tests start their own Ray head; token auth would make subprocess drivers fetch a token first.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("KITARU_NO_PROMPT", "1")  # a developer's terminal must not turn waits into prompts
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # gcsfs stalls 60 s per bucket lookup on an emulator
os.environ.setdefault("KITARU_WARM_RAY", "0")  # a private Ray per process; tests of the warm Ray start and stop their own
os.environ.setdefault("KITARU_SERVER_RETRY_SECONDS", "30")  # a test's server that is gone stalls runtimes briefly

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests"))  # tests/emulators.py for every group


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--crash-trials", type=int, default=24, help="number of injected crashes in the crash-injection suite")
    parser.addoption("--fault-trials", type=int, default=1, help="flows per fault rate in the storage-fault suite")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session():
    """One Ray instance for every test that needs one (a Ray start costs seconds)."""
    import ray

    ray.init(address="local", num_cpus=2, object_store_memory=512 * 1024**2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_cluster():
    """A Ray cluster on this machine for the ``ray`` backend: a head, and a second node offering the custom
    resource ``gpu_node`` (each node on its own ports, in its own process group)."""
    from kitaru.backends.local_cluster import LocalRayCluster

    with LocalRayCluster(num_cpus=1) as cluster:
        cluster.add_node(num_cpus=1, resources={"gpu_node": 1})
        yield cluster


@pytest.fixture
def kitaru_home(tmp_path):
    """An isolated KITARU_HOME (database and storage) with a short driver lease."""
    from kitaru.testing import isolated_home

    with isolated_home(tmp_path / "home", lease_seconds=2.0) as home:
        yield home


@pytest.fixture(params=["embedded", "remote"])
def ray_home(request, ray_session, kitaru_home, monkeypatch):
    """An isolated KITARU_HOME on the shared Ray session, used embedded and through a Kitaru server (remote).

    Remote: the HTTP API runs in this process (uvicorn on a thread) over the home's database, with auth
    on; flows, clients and subprocesses reach it by ``KITARU_SERVER_URL`` and ``KITARU_API_KEY``.
    Detached drivers (an input resuming a suspended execution starts one) join the shared Ray session.
    """
    monkeypatch.setenv("KITARU_RAY_ADDRESS", ray_session)
    if request.param == "embedded":
        yield kitaru_home
        return
    with remote_server(resolve_database_url(), monkeypatch):
        yield kitaru_home


def resolve_database_url() -> str:
    from kitaru.config import resolve_settings

    return resolve_settings().database_url


@contextlib.contextmanager
def remote_server(database_url: str, monkeypatch: pytest.MonkeyPatch):
    """The API over ``database_url`` on a free port, with a fresh API key; this process is connected to it."""
    from kitaru_server import service_for
    from kitaru_server.api import create_app
    from kitaru_server.testing import serve_in_thread

    import kitaru
    from kitaru.client._http import close_http_services
    from kitaru.config import resolve_settings

    service = service_for(database_url)
    key = service.create_api_key("tests", kind="service_account", admin=True)["key"]
    settings = resolve_settings()
    app = create_app(service=service, auth=True, storage_url=settings.storage_url, storage_options=settings.storage_options)
    with serve_in_thread(app) as url:
        kitaru.connect(url, api_key=key)
        monkeypatch.setenv("KITARU_SERVER_URL", url)
        monkeypatch.setenv("KITARU_API_KEY", key)
        try:
            yield url
        finally:
            _join_driver_threads(timeout=15)  # a driver still finishing (e.g. after a cancel) reports to this server
            close_http_services()


def _join_driver_threads(timeout: float) -> None:
    import threading
    import time

    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith("kitaru-driver-"):
            thread.join(max(deadline - time.monotonic(), 0))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server from the machine's binaries (fsync off), for the whole run."""
    from kitaru_server.testing import local_postgres, postgres_binaries

    if postgres_binaries() is None:
        message = "PostgreSQL's initdb/pg_ctl were not found (install PostgreSQL 15+); the PostgreSQL variants need them"
        if IN_CI:
            pytest.fail(message + " and CI must run them.")
        pytest.skip(message + ".")
    with local_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database: a SQLite file (WAL), then a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kitaru.db'}"
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)


def _emulator(name: str):
    """Start one of tests/emulators.py's emulators for the session; a missing one skips, or fails under CI."""
    import emulators

    try:
        return getattr(emulators, name)()
    except emulators.EmulatorMissing as exc:
        if IN_CI:
            pytest.fail(f"{exc}; CI must run every storage emulator (make test installs them).")
        pytest.skip(f"{exc}; make test installs it.")


@pytest.fixture(scope="session")
def s3_emulator():
    """A real S3 API (moto's server) on loopback, with a bucket named ``kitaru``."""
    with _emulator("moto_s3") as emulator:
        yield emulator


@pytest.fixture(scope="session")
def s3_server(s3_emulator):
    """fsspec options reaching :func:`s3_emulator`."""
    return s3_emulator.options


@pytest.fixture(scope="session")
def gcs_emulator():
    """fake-gcs-server on loopback, with a bucket named ``kitaru``."""
    with _emulator("fake_gcs") as emulator:
        yield emulator


@pytest.fixture(scope="session")
def azure_emulator():
    """Azurite's Blob service on loopback, with a container named ``kitaru``."""
    with _emulator("azurite") as emulator:
        yield emulator


STORE_EMULATORS = {"s3": "s3_emulator", "gs": "gcs_emulator", "abfs": "azure_emulator"}


@pytest.fixture
def store_url(request, tmp_path):
    """``(url, options)`` of a fresh, empty storage root on the store named by the test's ``store`` parameter."""
    scheme = request.param
    if scheme == "file":
        return tmp_path.joinpath("store").as_uri(), {}
    emulator = request.getfixturevalue(STORE_EMULATORS[scheme])
    return f"{emulator.url}/{tmp_path.name}", emulator.options
