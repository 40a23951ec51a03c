"""The server as an attacker sees it: a real server with auth on, reached with an ordinary user key.

Each test sends the request an attacker would and checks that it is refused with one clear 4xx naming
the rule, that nothing was stored and nothing started; then that the legitimate request still works.
"""

import base64
import hashlib
import json
import time

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from kitaru_server import KitaruService
from kitaru_server.api import create_app
from kitaru_server.api._guards import csrf_token
from kitaru_server.testing import serve_in_thread

STORAGE = "file:///srv/kitaru/storage"  # the server's storage for the default stack (the server never reads it)
SETTINGS = {"storage_url": STORAGE, "storage_options": {}}


def stored(payload: bytes = b"42", storage: str = STORAGE) -> dict:
    digest = hashlib.sha256(payload).hexdigest()
    return {
        "uri": f"{storage}/objects/{digest[:2]}/{digest}",
        "sha256": digest,
        "size": len(payload),
        "serializer": "json",
        "type_path": "builtins:int",
    }


def execution(exec_id: str = "e1", **extra) -> dict:
    return {
        "exec_id": exec_id,
        "flow": "f",
        "flow_ref": "m:f",
        "settings": SETTINGS,
        "driver_id": "d1",
        "lease_expires_at": time.time() + 30,
        "inputs": {"object": stored(), "preview": {}},
        **extra,
    }


@pytest.fixture
def service(tmp_path):
    service = KitaruService(f"sqlite:///{tmp_path / 'kitaru.db'}")
    yield service
    service.close()


@pytest.fixture
def keys(service):
    return {
        "admin": service.create_api_key("admin", admin=True)["key"],
        "user": service.create_api_key("mallory")["key"],
        "other": service.create_api_key("alice")["key"],
        "service": service.create_api_key("runtime", kind="service_account")["key"],
        "granted": service.create_api_key("ops", continue_others=True)["key"],
    }


@pytest.fixture
def server(service):
    with serve_in_thread(create_app(service=service, auth=True, storage_url=STORAGE, max_body_bytes=1024 * 1024)) as url:
        yield url


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def refused(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["message"] and all(word in body["message"] for word in words), body
    return body


# --- finding 1: no code from API input runs anywhere --------------------------------------------


def test_an_execution_must_store_in_its_stacks_storage_never_inline_or_elsewhere(server, keys, service):
    pickled = base64.b64encode(b"\x80\x04cposix\nsystem\n(S'id'\ntR.").decode()
    inline = {**stored(b"x"), "uri": f"data:application/octet-stream;base64,{pickled}", "serializer": "cloudpickle"}
    attacks = {
        "data: storage": execution(settings={"storage_url": "data:", "storage_options": {}}, flow_blob=inline),
        "another storage": execution(settings={"storage_url": "file:///tmp/mine", "storage_options": {}}),
        "storage options": execution(settings={**SETTINGS, "storage_options": {"endpoint_url": "http://evil"}}),
        "inline blob": execution(flow_blob=inline),
        "blob elsewhere": execution(flow_blob={**stored(b"x"), "uri": "file:///etc/passwd"}),
        "blob traversal": execution(flow_blob={**stored(b"x"), "uri": f"{STORAGE}/objects/../../../etc/passwd"}),
        "inputs elsewhere": execution(inputs={"object": stored(storage="file:///tmp/mine"), "preview": {}}),
        "no storage": execution(settings={}),
    }
    with client(server, keys["user"]) as api:
        for name, body in attacks.items():
            response = api.post("/api/v1/executions", json=body)
            assert response.status_code == 422, (name, response.text)
            assert "storage" in response.json()["message"], name
            assert api.get("/api/v1/executions/e1").status_code == 404, name  # nothing stored
        created = api.post("/api/v1/executions", json=execution(flow_blob=stored(b"blob")))
        assert created.status_code == 201, created.text
    assert service.count_executions() == 1


def test_a_stack_execution_stores_in_the_stacks_storage(server, keys):
    with client(server, keys["admin"]) as admin:
        assert admin.put("/api/v1/stacks/team", json={"storage_url": "s3://team/runs"}).status_code == 200
    with client(server, keys["user"]) as api:
        on_default = execution(stack="team")
        refused(api.post("/api/v1/executions", json=on_default), 422, "'team'", "s3://team/runs")
        team = {"storage_url": "s3://team/runs", "storage_options": {}}
        good = execution(stack="team", settings=team, inputs={"object": stored(storage="s3://team/runs"), "preview": {}})
        assert api.post("/api/v1/executions", json=good).status_code == 201
        refused(api.post("/api/v1/executions", json=execution("e2", stack="nope")), 404, "nope")


def test_committed_values_and_results_must_be_objects_of_the_executions_storage(server, keys, service):
    with client(server, keys["user"]) as api:
        assert api.post("/api/v1/executions", json=execution()).status_code == 201
        bad_output = {
            "op": "attempt_finished",
            "exec_id": "e1",
            "call_id": "c1",
            "invocation_id": "step",
            "seq": 0,
            "name": "step",
            "attempt": 1,
            "status": "completed",
            "output": {**stored(), "uri": "file:///home/victim/.ssh/id_rsa"},
        }
        refused(api.post("/api/v1/batches", json={"operations": [bad_output]}), 422, "storage")
        bad_artifact = {**bad_output, "output": stored(), "artifacts": [{"name": "a", "meta": {**stored(), "uri": "data:,x"}}]}
        refused(api.post("/api/v1/batches", json={"operations": [bad_artifact]}), 422, "storage")
        assert service.existing_calls("e1") == {}  # nothing of a refused batch was written
        result = {**stored(), "uri": "memory://elsewhere/x"}
        refused(api.post("/api/v1/executions/e1/finish", json={"driver_id": "d1", "status": "completed", "result": result}), 422)
        assert service.get_execution("e1", with_calls=False)["status"] == "running"
        good = {**bad_output, "output": stored()}
        assert api.post("/api/v1/batches", json={"operations": [good]}).status_code == 200


def test_each_execution_records_who_created_and_who_continued_it(server, keys, service):
    with client(server, keys["other"]) as alice:
        assert alice.post("/api/v1/executions", json=execution(lease_expires_at=time.time() - 1)).status_code == 201
    record = service.get_execution("e1", with_calls=False)
    assert record["created_by"]["name"] == "alice" and record["created_by"]["key_id"]
    claim = {"driver_id": "d2", "lease_seconds": 5, "from_statuses": ["interrupted"]}
    with client(server, keys["user"]) as mallory:
        refused(mallory.post("/api/v1/executions/e1/claim", json=claim), 403, "mallory", "alice", "continue")
        forged = execution("f1", created_by={"key_id": "0" * 16, "name": "alice"})
        refused(mallory.post("/api/v1/executions", json=forged), 422, "created_by")  # the server records who, never the client
        replay = execution("r1", original_exec_id="e1")
        refused(mallory.post("/api/v1/executions", json=replay), 403, "replay")
        assert mallory.get("/api/v1/executions/r1").status_code == 404
    assert service.get_execution("e1", with_calls=False)["driver_id"] == "d1"  # nothing changed hands
    with client(server, keys["granted"]) as ops:
        assert ops.post("/api/v1/executions/e1/claim", json=claim).status_code == 200
    continued = service.get_execution("e1", with_calls=False)["continued_by"]
    assert continued["name"] == "ops" and continued["action"] == "resume"
    events = [e for e in service.get_events("e1") if e["kind"] == "execution.continued"]
    assert [e["payload"]["by"]["name"] for e in events] == ["ops"]
    with client(server, keys["service"]) as runtime:
        assert runtime.post("/api/v1/executions", json=execution("r2", original_exec_id="e1")).status_code == 201
    assert service.get_execution("r2", with_calls=False)["created_by"]["name"] == "runtime"


def test_a_runtime_request_on_another_principals_execution_is_refused(server, keys, service):
    with client(server, keys["other"]) as alice:
        assert alice.post("/api/v1/executions", json=execution()).status_code == 201
    log = {"exec_id": "e1", "timestamp": 1.0, "level": "INFO", "message": "forged", "source": "runner"}
    requests = [
        ("POST", "/api/v1/executions/e1/lease", {"driver_id": "d1", "lease_seconds": 60}),
        ("POST", "/api/v1/executions/e1/live-status", {"driver_id": "d1", "status": "waiting"}),
        ("POST", "/api/v1/executions/e1/finish", {"driver_id": "d1", "status": "failed"}),
        ("POST", "/api/v1/executions/e1/suspend", {"driver_id": "d1", "wait": "w"}),
        ("POST", "/api/v1/executions/e1/waits", {"driver_id": "d1", "record": {"name": "w", "seq": 0}}),
        ("POST", "/api/v1/batches", {"operations": [{"op": "logs", "entries": [log]}]}),
        ("POST", "/api/v1/batches", {"operations": [{"op": "metadata", "exec_id": "e1", "fields": {"x": 1}}]}),
    ]
    with client(server, keys["user"]) as mallory:  # the driver id is no secret: anyone may read the execution
        for method, path, body in requests:
            refused(mallory.request(method, path, json=body), 403, "may not drive")
    record = service.get_execution("e1", with_calls=False)
    assert (record["status"], record["metadata"], service.get_logs("e1"), service.list_waits("e1")) == ("running", {}, [], [])
    with client(server, keys["service"]) as runtime:
        assert runtime.post("/api/v1/executions/e1/lease", json={"driver_id": "d1", "lease_seconds": 60}).json()["renewed"]


def test_the_ui_does_not_continue_another_principals_execution(server, keys, service):
    with client(server, keys["other"]) as alice:
        assert alice.post("/api/v1/executions", json=execution(lease_expires_at=time.time() - 1)).status_code == 201
    with client(server, keys["user"]) as mallory:
        for action in ("resume", "retry"):
            refused(mallory.post(f"/ui/actions/executions/e1/{action}"), 403, "may not")
        refused(mallory.post("/ui/actions/executions/e1/replay", json={"at": "step"}), 403, "may not replay")
    record = service.get_execution("e1", with_calls=False)
    assert record["driver_id"] == "d1" and record["continued_by"] is None  # nothing started
    service.open_wait("e1", "d1", {"name": "approve", "seq": 0, "schema": {"type": "boolean"}, "metadata": {}})
    assert service.suspend_execution("e1", "d1", "approve")
    with client(server, keys["user"]) as mallory:  # input to a suspended execution would resume it
        refused(mallory.post("/ui/actions/executions/e1/waits/approve/input", json={"value": True}), 403, "may not resume")
    assert service.get_wait("e1", "approve")["status"] == "pending"
    assert service.get_execution("e1", with_calls=False)["driver_id"] is None


# --- finding 2: roles --------------------------------------------------------------------------------


def test_a_user_key_cannot_point_models_at_other_hosts_or_touch_secrets(server, keys, service, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("KITARU_SECRET_KEY", Fernet.generate_key().decode())
    with client(server, keys["admin"]) as admin:
        assert admin.put("/api/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": "sk-live"}}).status_code == 200
        assert admin.put("/api/v1/models/fast", json={"model": "openai/gpt-5-nano", "secret": "openai"}).status_code == 200
    with client(server, keys["user"]) as api:
        exfiltrate = {"model": "openai/gpt-5-nano", "secret": "openai", "base_url": "https://evil.example/v1"}
        refused(api.put("/api/v1/models/fast", json=exfiltrate), 403, "not an admin key")
        refused(api.put("/api/v1/models/new", json=exfiltrate), 403, "not an admin key")
        refused(api.delete("/api/v1/models/fast"), 403)
        refused(api.put("/api/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": "mine"}}), 403)
        refused(api.delete("/api/v1/secrets/openai"), 403)
        refused(api.get("/api/v1/secrets/openai/values"), 403, "service-account")
        assert api.get("/api/v1/secrets/openai").json()["keys"] == ["OPENAI_API_KEY"]  # names, never values
        assert "sk-live" not in api.get("/api/v1/secrets").text
    with client(server, keys["admin"]) as admin:
        refused(admin.get("/api/v1/secrets/openai/values"), 403)  # values reach runtimes only
    with client(server, keys["service"]) as runtime:
        assert runtime.get("/api/v1/secrets/openai/values").json() == {"OPENAI_API_KEY": "sk-live"}
    assert service.get_model("fast")["base_url"] is None and service.secret_values("openai") == {"OPENAI_API_KEY": "sk-live"}


ADMIN_ONLY = {
    "PUT /api/v1/models/{alias}",
    "DELETE /api/v1/models/{alias}",
    "PUT /api/v1/secrets/{name}",
    "DELETE /api/v1/secrets/{name}",
    "PUT /api/v1/stacks/{name}",
    "DELETE /api/v1/stacks/{name}",
    "DELETE /api/v1/deployments/{flow}/{version}",
    "GET /api/v1/keys",
    "POST /api/v1/keys",
    "GET /api/v1/keys/{key_id}",
    "DELETE /api/v1/keys/{key_id}",
    "POST /api/v1/keys/{key_id}/rotate",
}
SERVICE_ACCOUNT_ONLY = {"GET /api/v1/secrets/{name}/values"}
OPEN = {"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/login"}


def app_routes(app):
    """``app.routes`` with included routers expanded (FastAPI 0.16x keeps them as lazy ``_IncludedRouter`` entries)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.routes)
    return [(context.original_route, context.path, context.methods) for context in iter_route_contexts(app.routes)]


def test_role_matrix_over_every_route(service, keys):
    """Every route of the app with each role: admin-only and service-account-only routes refuse the others (403);
    every other route refuses no role. A new route is walked too: it is open to every role unless listed above."""
    app = create_app(service=service, auth=True, storage_url=STORAGE)
    routes = []
    for entry in app_routes(app):
        route, path, methods = entry if isinstance(entry, tuple) else (entry, entry.path, entry.methods)
        if path in OPEN:
            continue
        assert isinstance(route, APIRoute), path
        routes += [f"{method} {path}" for method in sorted(methods - {"HEAD"})]
    assert ADMIN_ONLY | SERVICE_ACCOUNT_ONLY <= set(routes)
    roles = {"admin": keys["admin"], "user": keys["user"], "service_account": keys["service"]}
    allowed = {"admin": ADMIN_ONLY, "user": set(), "service_account": SERVICE_ACCOUNT_ONLY}
    with TestClient(app) as browser:
        for route in routes:
            method, path = route.split(" ", 1)
            concrete = path.replace("{", "").replace("}", "")  # every parameter named after itself: nothing exists
            for role, key in roles.items():
                response = browser.request(method, concrete, headers={"Authorization": f"Bearer {key}"}, json={})
                denied = route in (ADMIN_ONLY | SERVICE_ACCOUNT_ONLY) - allowed[role]
                assert (response.status_code == 403) == denied, (role, route, response.status_code, response.text)


# --- finding 4 and 5: limits, Unicode ------------------------------------------------------------------


def test_request_bodies_are_capped_while_they_are_read(server, keys, service):
    with client(server, keys["user"]) as api:
        assert api.post("/api/v1/executions", json=execution()).status_code == 201
        big = {"fields": {"blob": "x" * (2 * 1024 * 1024)}}
        refused(api.patch("/api/v1/executions/e1/metadata", json=big), 413, "limit of 1048576 bytes")

        def chunks():  # no Content-Length: the server counts as it reads
            yield b'{"fields": {"blob": "'
            for _ in range(64):
                yield b"x" * 32768
            yield b'"}}'

        response = api.patch("/api/v1/executions/e1/metadata", content=chunks(), headers={"Content-Type": "application/json"})
        refused(response, 413, "KITARU_SERVER_MAX_BODY_BYTES")
        refused(api.patch("/api/v1/executions/e1/metadata", json={"fields": {"blob": "x" * 300_000}}), 422, "metadata is")
    assert service.get_execution("e1", with_calls=False)["metadata"] == {}


def test_text_that_is_not_unicode_is_refused(server, keys, service):
    with client(server, keys["user"]) as api:
        assert api.post("/api/v1/executions", json=execution()).status_code == 201
        for raw in (b'{"fields": {"k": "\\ud800"}}', b'{"fields": {"\\udfff": 1}}', b'{"fields": {"k": "\xed\xa0\x80"}}'):
            response = api.patch("/api/v1/executions/e1/metadata", content=raw, headers={"Content-Type": "application/json"})
            refused(response, 422, "not valid Unicode")
        assert service.get_execution("e1", with_calls=False)["metadata"] == {}
        emoji = b'{"fields": {"k": "\\ud83d\\ude00"}}'  # a surrogate pair is one valid character
        assert api.patch("/api/v1/executions/e1/metadata", content=emoji, headers={"Content-Type": "application/json"}).is_success
        assert api.get("/executions/e1").status_code == 200
    assert service.get_execution("e1", with_calls=False)["metadata"] == {"k": "\U0001f600"}


# --- browser safety -------------------------------------------------------------------------------------


def test_state_changing_browser_requests_need_this_origin_and_the_csrf_token(server, keys, service):
    with client(server, keys["user"]) as api:
        assert api.post("/api/v1/executions", json=execution()).status_code == 201
    cookies = {"kitaru_api_key": keys["user"]}
    token = csrf_token(keys["user"])
    with httpx.Client(base_url=server, cookies=cookies) as browser:
        refused(browser.post("/ui/actions/executions/e1/cancel", headers={"Origin": "https://evil.example"}), 403, "origin")
        refused(browser.post("/ui/actions/executions/e1/cancel", headers={"Origin": "null"}), 403, "origin")
        refused(browser.post("/ui/actions/executions/e1/cancel"), 403, "CSRF")
        refused(browser.post("/api/v1/executions/e1/cancel", headers={"X-Kitaru-CSRF": "0" * 32}), 403, "CSRF")
        assert service.get_execution("e1", with_calls=False)["status"] == "running"  # nothing happened
        page = browser.get(f"{server}/executions/e1", headers={"Accept": "text/html"})
        assert f'<meta name="kitaru-csrf" content="{token}">' in page.text
        origin = server
        done = browser.post("/api/v1/executions/e1/cancel", headers={"X-Kitaru-CSRF": token, "Origin": origin})
        assert done.status_code == 200, done.text
    with client(server, keys["user"]) as api:  # a key in the header is no browser's ambient credential
        refused(api.post("/api/v1/executions/e1/cancel", headers={"Origin": "https://evil.example"}), 403, "origin")


def test_a_server_without_auth_answers_only_loopback_host_names(service):
    with serve_in_thread(create_app(service=service, auth=False, storage_url=STORAGE)) as url:
        port = url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", "10.0.0.1", "127.0.0.1.evil.example"):
            refused(httpx.get(f"{url}/api/v1/executions", headers={"Host": host}), 403, "loopback host names")
            refused(httpx.post(f"{url}/api/v1/executions", headers={"Host": host}, json=execution()), 403)
        assert service.count_executions() == 0
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
            assert httpx.get(f"{url}/api/v1/executions", headers={"Host": host}).status_code == 200, host
        cross_site = httpx.post(f"{url}/api/v1/executions", json=execution(), headers={"Origin": "https://evil.example"})
        refused(cross_site, 403, "origin")
        assert service.count_executions() == 0


def test_secrets_and_keys_never_appear_in_responses(server, keys, service, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("KITARU_SECRET_KEY", Fernet.generate_key().decode())
    with client(server, keys["admin"]) as admin:
        admin.put("/api/v1/secrets/s", json={"values": {"K": "hunter2"}})
        for path in ("/api/v1/secrets", "/api/v1/secrets/s", "/api/v1/keys", "/api/v1/auth/whoami", "/api/v1/models"):
            text = admin.get(path).text
            assert "hunter2" not in text and keys["user"] not in text and "key_hash" not in text
    assert json.dumps(service.list_api_keys()).count("ktr_") == len(service.list_api_keys())  # prefixes only
