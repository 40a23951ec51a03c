"""Auth: every route but health, readiness and the API docs refuses a missing or wrong key; keys are managed by admins."""

import re
import stat

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from kitaru_server import KitaruService
from kitaru_server.api import create_app
from kitaru_server.process import auth_required, is_loopback

from kitaru.errors import KitaruUsageError

# /login is the web UI's sign-in page (SPEC §5: every route but health and the login page needs a key)
OPEN_PATHS = {"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/login"}


@pytest.fixture
def service(tmp_path):
    return KitaruService(f"sqlite:///{tmp_path / 'k.db'}")


def app_routes(app):
    """``app.routes`` with included routers expanded (FastAPI 0.16x keeps them as lazy ``_IncludedRouter`` entries)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.routes)
    return [(context.original_route, context.path, context.methods) for context in iter_route_contexts(app.routes)]


def every_route_call(app):
    """(method, concrete path) for every route of the app, path parameters filled in."""
    for entry in app_routes(app):
        route, path, methods = entry if isinstance(entry, tuple) else (entry, entry.path, entry.methods)
        if path in OPEN_PATHS:
            continue
        assert isinstance(route, APIRoute), f"{path} is not an API route; is it meant to be open?"
        for method in sorted(methods - {"HEAD"}):
            yield method, re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_refuses_a_missing_or_wrong_key(service):
    app = create_app(service=service)
    member = service.create_api_key("member")["key"]
    calls = list(every_route_call(app))
    assert len(calls) >= 40
    with TestClient(app) as client:
        for method, path in calls:
            for headers in (
                {},
                {"Authorization": "Bearer ktr_0123456789abcdef.notthekeynotthekeynotthekey"},
                {"Authorization": "Basic dXNlcjpwYXNz"},
                {"Authorization": f"Bearer {member}x"},
            ):
                response = client.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.json()["error"] == "KitaruAuthError" and response.headers["WWW-Authenticate"] == "Bearer"
            response = client.request(method, path, headers={"Authorization": f"Bearer {member}"}, json={})
            assert response.status_code != 401, (method, path)
        for path in OPEN_PATHS - {"/docs/oauth2-redirect"}:
            assert client.get(path).status_code == 200, path


def test_auth_off_serves_without_a_key(service):
    with TestClient(create_app(service=service, auth=False), base_url="http://127.0.0.1") as client:
        assert client.get("/api/v1/executions").status_code == 200
        assert client.get("/api/v1/keys").status_code == 200


def test_keys_are_created_rotated_and_revoked_by_admins(service):
    admin = service.bootstrap_admin_key()
    assert admin is not None and service.bootstrap_admin_key() is None  # one bootstrap per database
    with TestClient(create_app(service=service), headers={"Authorization": f"Bearer {admin['key']}"}) as client:
        created = client.post("/api/v1/keys", json={"name": "ci-bot", "kind": "service_account"})
        assert created.status_code == 201
        record = created.json()
        bot = {"Authorization": f"Bearer {record['key']}"}
        assert client.get("/api/v1/auth/whoami", headers=bot).json()["name"] == "ci-bot"
        assert client.get("/api/v1/keys", headers=bot).status_code == 403  # not an admin key
        listed = client.get("/api/v1/keys").json()["items"]
        assert {k["name"] for k in listed} == {"admin", "ci-bot"}
        assert all("key" not in k and "key_hash" not in k for k in listed)  # the plain key is shown once, the hash never

        rotated = client.post(f"/api/v1/keys/{record['key_id']}/rotate").json()
        assert rotated["key"] != record["key"] and rotated["rotated_at"] is not None
        assert client.get("/api/v1/auth/whoami", headers=bot).status_code == 401  # the old key stopped working
        new_bot = {"Authorization": f"Bearer {rotated['key']}"}
        assert client.get("/api/v1/auth/whoami", headers=new_bot).status_code == 200

        assert client.delete(f"/api/v1/keys/{record['key_id']}").json()["revoked_at"] is not None
        assert client.get("/api/v1/auth/whoami", headers=new_bot).status_code == 401
        assert client.post(f"/api/v1/keys/{record['key_id']}/rotate").status_code == 409
        assert [k["name"] for k in client.get("/api/v1/keys", params={"include_revoked": True}).json()["items"]] == [
            "admin",
            "ci-bot",
        ]
        assert client.post("/api/v1/keys", json={"name": "bad name"}).status_code == 422
        assert client.get("/api/v1/keys/nope").status_code == 404


def test_a_key_revoked_by_another_server_process_is_refused_within_moments(service, tmp_path):
    """The API remembers a verified key for about two seconds; another process on the same database
    (here a second service) revokes it, and this server refuses it once that moment has passed."""
    from kitaru.testing import wait_for

    key = service.create_api_key("bot", kind="service_account")
    other_process = KitaruService(f"sqlite:///{tmp_path / 'k.db'}")
    with TestClient(create_app(service=service), headers={"Authorization": f"Bearer {key['key']}"}) as client:
        assert client.get("/api/v1/auth/whoami").status_code == 200
        other_process.revoke_api_key(key["key_id"])
        wait_for(lambda: client.get("/api/v1/auth/whoami").status_code == 401, timeout=10, message="the revoked key refused")


def test_keys_are_stored_hashed(service):
    created = service.create_api_key("someone")
    from sqlalchemy import text

    with service._read.connect() as conn:
        stored = conn.execute(text("SELECT key_hash, prefix FROM api_keys")).one()
    assert created["key"] not in stored.key_hash and len(stored.key_hash) == 64
    assert created["key"].startswith(stored.prefix) and len(stored.prefix) < len(created["key"]) - 32


def test_auth_is_always_on_off_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert auth_required("127.0.0.1", no_auth=False) and not auth_required("127.0.0.1", no_auth=True)
    assert auth_required("0.0.0.0", no_auth=False)
    with pytest.raises(KitaruUsageError, match="only allowed on a loopback address"):
        auth_required("0.0.0.0", no_auth=True)


def test_bootstrap_key_file_is_private(tmp_path, service):
    from kitaru_server.process import _bootstrap_key

    key = _bootstrap_key(service, tmp_path)
    path = tmp_path / "server.key"
    assert path.read_text().strip() == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _bootstrap_key(service, tmp_path) is None  # an admin key exists: nothing new
