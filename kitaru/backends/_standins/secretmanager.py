"""A stand-in for Google Cloud Secret Manager's ``AccessSecretVersion`` (no Google Cloud account is reachable here,
and Google ships no Secret Manager emulator).

Serves ``GET /v1/projects/*/secrets/*/versions/*:access`` in the REST/JSON wire format the real
``google-cloud-secret-manager`` client's REST transport uses (``latest`` is the newest version;
the payload base64 with its CRC32C), answers 401 ``UNAUTHENTICATED`` without the bearer token it
issued and 404 ``NOT_FOUND`` for a missing secret or version. :meth:`credentials_file` writes
application default credentials carrying that token, for the processes that read secrets.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitaru.backends._standins._http import JsonServer

__all__ = ["SecretManagerStandIn"]

_ACCESS = re.compile(r"^/v1/projects/(?P<project>[^/]+)/secrets/(?P<secret>[^/]+)/versions/(?P<version>[^/:]+):access$")
TOKEN = "secret-manager-standin-token"


class SecretManagerStandIn:
    """The stand-in on a loopback port (``url``, the client's ``api_endpoint``); use as a context manager.

    Args:
        secrets: ``{"projects/P/secrets/S": [value of version 1, value of version 2, ...]}``.
    """

    def __init__(self, secrets: Mapping[str, list[str]] | None = None) -> None:
        self.secrets = {name: list(values) for name, values in (secrets or {}).items()}
        self.accessed: list[str] = []
        self._lock = threading.Lock()
        self._server: JsonServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def __enter__(self) -> SecretManagerStandIn:
        self._server = JsonServer(self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()

    def credentials_file(self, path: Path) -> Path:
        """Application default credentials (``GOOGLE_APPLICATION_CREDENTIALS``) holding this stand-in's token."""
        path.write_text(
            json.dumps(
                {
                    "type": "authorized_user",
                    "client_id": "standin",
                    "client_secret": "standin",
                    "refresh_token": "standin",
                    "token": TOKEN,
                    "expiry": "2099-01-01T00:00:00Z",
                }
            )
        )
        return path

    def _handle(self, method: str, path: str, query: dict[str, str], body: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
        match = _ACCESS.match(path)
        if method != "GET" or match is None:
            return 404, _error(404, "NOT_FOUND", f"no route {method} {path}")
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        secret = f"projects/{match['project']}/secrets/{match['secret']}"
        with self._lock:
            versions = self.secrets.get(secret)
            if not versions:
                return 404, _error(404, "NOT_FOUND", f"Secret [{secret}] not found or has no versions.")
            number = len(versions) if match["version"] == "latest" else int(match["version"])
            if not 1 <= number <= len(versions):
                return 404, _error(404, "NOT_FOUND", f"Secret Version [{secret}/versions/{match['version']}] not found.")
            self.accessed.append(f"{secret}/versions/{number}")
            data = versions[number - 1].encode()
        payload: dict[str, Any] = {"data": base64.b64encode(data).decode()}
        try:
            import google_crc32c

            payload["dataCrc32c"] = str(google_crc32c.value(data))
        except ImportError:
            pass
        return 200, {"name": f"{secret}/versions/{number}", "payload": payload}


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
