"""Shared test fixtures: one Ray session for the whole run, an isolated KITARU_HOME per test,
and real services (an S3 emulator) started on loopback."""

from __future__ import annotations

import contextlib
import os
import socket

import pytest

# Tests start their own Ray head; token auth would make subprocess drivers fetch a token first.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("KITARU_NO_PROMPT", "1")  # a developer's terminal must not turn waits into prompts
os.environ.setdefault("KITARU_SERVER_RETRY_SECONDS", "30")  # a test's server that is gone stalls runtimes briefly

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--crash-trials", type=int, default=24, help="number of injected crashes in the crash-injection suite")


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
    """
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

    service = service_for(database_url)
    key = service.create_api_key("tests", kind="service_account", admin=True)["key"]
    with serve_in_thread(create_app(service=service, auth=True)) as url:
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


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto's server) on loopback, with a bucket named ``kitaru``."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        if IN_CI:
            raise
        pytest.skip("moto[server] is not installed (make test installs it)")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).create_bucket(Bucket="kitaru")
    yield {"endpoint_url": endpoint, "key": "test", "secret": "test", "client_kwargs": {"region_name": "us-east-1"}}
    server.stop()
