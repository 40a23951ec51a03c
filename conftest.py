"""Shared test fixtures: one Ray session for the whole run, an isolated KITARU_HOME per test,
and real services (an S3 emulator) started on loopback."""

from __future__ import annotations

import os
import socket

import pytest

# Tests start their own Ray head; token auth would make subprocess drivers fetch a token first.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

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


@pytest.fixture
def kitaru_home(tmp_path):
    """An isolated KITARU_HOME (database and storage) with a short driver lease."""
    from kitaru.testing import isolated_home

    with isolated_home(tmp_path / "home", lease_seconds=2.0) as home:
        yield home


@pytest.fixture
def ray_home(ray_session, kitaru_home):
    """An isolated KITARU_HOME on the shared Ray session."""
    return kitaru_home


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

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket="kitaru")
    yield {"endpoint_url": endpoint, "key": "test", "secret": "test", "client_kwargs": {"region_name": "us-east-1"}}
    server.stop()
