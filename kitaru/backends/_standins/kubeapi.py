"""A stand-in for the Kubernetes API server's custom-objects routes of KubeRay's CRDs (no cluster runs here).

Serves ``/apis/ray.io/v1/namespaces/{ns}/{rayjobs|rayclusters}[/{name}[/status]]`` and the
cluster-wide ``/apis/ray.io/v1/{plural}`` list as the API server does: ``resourceVersion`` on every
write (a stale one is a 409 Conflict), 404 NotFound, 409 AlreadyExists, the CRD's schema checked
on create and update (422 Invalid), unknown fields rejected under ``fieldValidation=Strict`` (400),
finalizers holding a deleted object until they are removed, and ``Status`` objects as error bodies.
It records which (verb, resource) pairs each client (by ``User-Agent``) used, for RBAC checks.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kitaru.backends._kuberay.schema import schema_errors

__all__ = ["KubeApiStandIn"]

_ROUTE = re.compile(
    r"^/apis/ray\.io/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<plural>rayjobs|rayclusters)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
)
_KINDS = {"rayjobs": "RayJob", "rayclusters": "RayCluster"}


class KubeApiStandIn:
    """The stand-in server on a loopback port (``url``); use as a context manager."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._version = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubeapi-standin", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> KubeApiStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the API's semantics, called by the handler under the lock ----------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, agent: str) -> tuple[int, Any]:
        match = _ROUTE.match(path)
        if match is None:
            return 404, _status(404, "NotFound", f"the server could not find the requested resource ({path})")
        ns, plural, name, sub = match["ns"], match["plural"], match["name"], match["sub"]
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        self.seen[agent].add((verb, plural + ("/status" if sub else "")))
        with self._lock:
            if name is None:
                if method == "GET":
                    return 200, self._list(plural, ns, query.get("labelSelector"))
                if method == "POST" and ns:
                    return self._create(plural, ns, body, strict=query.get("fieldValidation") == "Strict")
                return 405, _status(405, "MethodNotAllowed", f"{method} is not supported on {path}")
            key = (plural, ns or "", name)
            current = self.objects.get(key)
            if current is None:
                return 404, _status(404, "NotFound", f'{plural}.ray.io "{name}" not found', name=name, kind=plural)
            if method == "GET":
                return 200, current
            if method == "DELETE":
                return self._delete(key, current)
            if method in ("PUT", "PATCH"):
                return self._update(
                    key,
                    current,
                    body,
                    status_only=bool(sub),
                    merge=method == "PATCH",
                    strict=query.get("fieldValidation") == "Strict",
                )
        return 405, _status(405, "MethodNotAllowed", f"{method} is not supported on {path}")

    def _list(self, plural: str, ns: str | None, selector: str | None) -> dict[str, Any]:
        wanted = dict(part.split("=", 1) for part in selector.split(",")) if selector else {}
        items = [
            obj
            for (p, n, _), obj in sorted(self.objects.items())
            if p == plural
            and (ns is None or n == ns)
            and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        return {
            "apiVersion": "ray.io/v1",
            "kind": _KINDS[plural] + "List",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _create(self, plural: str, ns: str, body: Any, *, strict: bool) -> tuple[int, Any]:
        name = (body.get("metadata") or {}).get("name", "")
        if rejected := self._check(plural, name, body, strict=strict):
            return rejected
        key = (plural, ns, name)
        if key in self.objects:
            return 409, _status(409, "AlreadyExists", f'{plural}.ray.io "{name}" already exists', name=name, kind=plural)
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        meta.update(namespace=ns, uid=str(uuid.uuid4()), generation=1, creationTimestamp=_now(), resourceVersion=self._next())
        self.objects[key] = obj
        return 201, obj

    def _update(
        self, key: tuple[str, str, str], current: dict[str, Any], body: Any, *, status_only: bool, merge: bool, strict: bool
    ) -> tuple[int, Any]:
        sent = (body.get("metadata") or {}).get("resourceVersion")
        if sent and sent != current["metadata"]["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {key[0]}.ray.io "{key[2]}": the object has been modified; '
                "please apply your changes to the latest version and try again"
            )
            return 409, _status(409, "Conflict", message, name=key[2], kind=key[0])
        updated = copy.deepcopy(current)
        if status_only:
            status = body.get("status") or {}
            updated["status"] = {**updated.get("status", {}), **status} if merge else status
        else:
            for field in ("spec", "metadata"):
                if field in body:
                    updated[field] = _merge(updated.get(field, {}), body[field]) if merge else copy.deepcopy(body[field])
            for kept in ("uid", "namespace", "name", "creationTimestamp", "deletionTimestamp", "generation"):
                if kept in current["metadata"]:
                    updated["metadata"][kept] = current["metadata"][kept]
            if updated.get("spec") != current.get("spec"):
                updated["metadata"]["generation"] = current["metadata"]["generation"] + 1
        if rejected := self._check(key[0], key[2], updated, strict=strict):
            return rejected
        updated["metadata"]["resourceVersion"] = self._next()
        if updated["metadata"].get("deletionTimestamp") and not updated["metadata"].get("finalizers"):
            del self.objects[key]  # the last finalizer is gone: the deletion completes
        else:
            self.objects[key] = updated
        return 200, updated

    def _delete(self, key: tuple[str, str, str], current: dict[str, Any]) -> tuple[int, Any]:
        if current["metadata"].get("finalizers"):
            current["metadata"].setdefault("deletionTimestamp", _now())
            current["metadata"]["resourceVersion"] = self._next()
            return 200, current
        del self.objects[key]
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": key[2], "kind": key[0]}}

    def _check(self, plural: str, name: str, obj: dict[str, Any], *, strict: bool) -> tuple[int, Any] | None:
        errors = schema_errors(obj)
        unknown = [error for error in errors if error.startswith("unknown field")]
        invalid = [error for error in errors if not error.startswith("unknown field")]
        if unknown and strict:
            return 400, _status(400, "BadRequest", f"strict decoding error: {', '.join(unknown)}")
        if invalid:
            kind = _KINDS[plural]
            return 422, _status(
                422, "Invalid", f'{kind}.ray.io "{name}" is invalid: [{", ".join(invalid)}]', name=name, kind=kind
            )
        return None

    def _next(self) -> str:
        self._version += 1
        return str(self._version)


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(base.get(key), value)
    return out


def _status(code: int, reason: str, message: str, **details: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _handler(api: KubeApiStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length)) if length else {}
            except ValueError:
                code, payload = 400, _status(400, "BadRequest", "the request body is not JSON")
            else:
                code, payload = api.handle(self.command, url.path, query, body, self.headers.get("User-Agent", ""))
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

    return Handler
