"""The HTTP API over the service layer, on SQLite and PostgreSQL: routes, pagination, errors, waits, streams."""

import json
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from kitaru_server import KitaruService
from kitaru_server.api import create_app
from kitaru_server.testing import serve_in_thread

STORAGE = "file:///srv/kitaru"  # the server's storage for the default stack (nothing is read from it here)
SETTINGS = {"storage_url": STORAGE, "storage_options": {}}
STORED = {
    "uri": f"{STORAGE}/objects/ab/{'ab' * 32}",
    "sha256": "ab" * 32,
    "size": 1,
    "serializer": "json",
    "type_path": "builtins:int",
}


@pytest.fixture
def service(database_url):
    service = KitaruService(database_url)
    yield service
    service.close()


@pytest.fixture
def admin_key(service):
    return service.create_api_key("admin", admin=True)["key"]


@pytest.fixture
def api(service, admin_key):
    with TestClient(create_app(service=service, storage_url=STORAGE), headers={"Authorization": f"Bearer {admin_key}"}) as client:
        yield client


def new_execution(api, exec_id="e1", lease=30.0, **extra):
    body = {
        "exec_id": exec_id,
        "flow": "f",
        "flow_ref": "m:f",
        "settings": SETTINGS,
        "driver_id": "d1",
        "lease_expires_at": time.time() + lease,
    }
    response = api.post("/api/v1/executions", json={**body, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def finished(exec_id="e1", call_id="c1", invocation_id="step", **extra):
    return {
        "op": "attempt_finished",
        "exec_id": exec_id,
        "call_id": call_id,
        "invocation_id": invocation_id,
        "seq": 0,
        "name": "step",
        "attempt": 1,
        "status": "completed",
        "started_at": 1.0,
        "ended_at": 2.0,
        "output": STORED,
        "logs": [
            {
                "exec_id": exec_id,
                "timestamp": 1.5,
                "level": "INFO",
                "message": "hi",
                "source": "step",
                "invocation_id": invocation_id,
                "attempt": 1,
            }
        ],
        "events": [{"exec_id": exec_id, "timestamp": 1.6, "kind": "checkpoint.returned", "invocation_id": invocation_id}],
        **extra,
    }


def open_gate(api, exec_id="e1", name="gate", schema=None):
    record = {"name": name, "seq": 0, "question": "ok?", "schema": schema, "metadata": {}}
    response = api.post(f"/api/v1/executions/{exec_id}/waits", json={"driver_id": "d1", "record": record})
    assert response.status_code == 200, response.text


def assert_error(response, status, error, match=""):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and match in body["message"], body
    return body


def test_health_ready_and_openapi(api):
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").json() == {"status": "ready", "database": True}
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/v1/executions" in paths and "/api/v1/executions/{exec_id}/logs/stream" in paths


def test_create_get_list_paginate_count(api):
    for i in range(5):
        new_execution(api, f"e{i}")
    page = api.get("/api/v1/executions", params={"limit": 2}).json()
    assert [e["exec_id"] for e in page["items"]] == ["e4", "e3"] and page["next_offset"] == 2
    rest = api.get("/api/v1/executions", params={"limit": 2, "offset": 4}).json()
    assert [e["exec_id"] for e in rest["items"]] == ["e0"] and rest["next_offset"] is None
    assert api.get("/api/v1/executions", params={"status": "running", "flow": "f"}).json()["items"][0]["status"] == "running"
    assert api.get("/api/v1/executions/count").json() == {"count": 5}
    execution = api.get("/api/v1/executions/e1").json()
    assert execution["checkpoints"] == [] and execution["status"] == "running"
    assert "checkpoints" not in api.get("/api/v1/executions/e1", params={"with_calls": False}).json()


def test_kitaru_errors_map_to_statuses_with_a_json_body(api):
    new_execution(api)
    assert_error(api.get("/api/v1/executions/nope"), 404, "KitaruNotFoundError", "'nope' not found")
    assert_error(
        api.post("/api/v1/executions", json={"exec_id": "e1", "flow": "f", "flow_ref": "m:f", "settings": SETTINGS}),
        409,
        "KitaruConflictError",
        "already exists",
    )
    claim = {"driver_id": "d2", "lease_seconds": 5, "from_statuses": ["interrupted"]}
    body = assert_error(api.post("/api/v1/executions/e1/claim", json=claim), 409, "KitaruStateError", "is running")
    assert body["fields"] == {"status": "running"}
    assert_error(api.put("/api/v1/secrets/bad name", json={"values": {"K": "v"}}), 422, "KitaruUsageError", "not valid")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"exec_id": NaN, "flow": "f", "flow_ref": "m", "settings": {}}',
        b"[]",
        b'"text"',
        b'{"exec_id": "x"}',
        b'{"exec_id": "", "flow": "f", "flow_ref": "m", "settings": {}}',
        b'{"exec_id": "x", "flow": "f", "flow_ref": "m", "settings": {}, "surprise": 1}',
        json.dumps({"exec_id": "x" * 200, "flow": "f", "flow_ref": "m", "settings": SETTINGS}).encode(),
    ],
)
def test_malformed_bodies_get_422_with_a_message(api, body):
    response = api.post("/api/v1/executions", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 422, "KitaruUsageError", "the request is invalid")


def test_bad_query_parameters_get_422(api):
    assert_error(api.get("/api/v1/executions", params={"limit": 0}), 422, "KitaruUsageError", "limit")
    assert_error(api.get("/api/v1/executions", params={"status": "sleeping"}), 422, "KitaruUsageError", "status")
    assert_error(api.get("/api/v1/executions", params={"offset": 10**30}), 422, "KitaruUsageError", "offset")


def test_runtime_lifecycle_over_http(api):
    new_execution(api)
    assert api.post("/api/v1/executions/e1/lease", json={"driver_id": "d1", "lease_seconds": 30}).json() == {"renewed": True}
    assert api.post("/api/v1/executions/e1/lease", json={"driver_id": "other", "lease_seconds": 30}).json() == {"renewed": False}
    assert api.post("/api/v1/executions/e1/live-status", json={"driver_id": "d1", "status": "waiting"}).json() == {
        "changed": True
    }
    batch = {"operations": [finished(), {"op": "metadata", "exec_id": "e1", "fields": {"k": 1}}]}
    assert api.post("/api/v1/batches", json=batch).json() == {"applied": 2}
    assert api.post("/api/v1/batches", json=batch).status_code == 200  # idempotent
    calls = api.get("/api/v1/executions/e1/calls").json()
    assert calls["step"]["status"] == "completed" and calls["step"]["attempt_count"] == 1
    assert api.get("/api/v1/executions/e1/cancel-requested").json() == {"cancel_requested": False}
    result = {"driver_id": "d1", "status": "completed", "result": STORED}
    assert api.post("/api/v1/executions/e1/finish", json=result).json() == {"finished": True}
    execution = api.get("/api/v1/executions/e1").json()
    assert execution["status"] == "completed" and execution["metadata"] == {"k": 1}
    assert sorted(a["name"] for a in api.get("/api/v1/artifacts", params={"exec_id": "e1"}).json()["items"]) == [
        "__result__",
        "step",
    ]
    artifact = api.get("/api/v1/executions/e1/artifacts/step").json()
    assert api.get(f"/api/v1/artifacts/{artifact['artifact_id']}").json() == artifact
    assert api.get(f"/api/v1/cache/{'0' * 64}").json() is None


def test_bad_batches_are_refused_whole(api):
    new_execution(api)
    assert_error(api.post("/api/v1/batches", json={"operations": [{"op": "teleport"}]}), 422, "KitaruUsageError")
    assert_error(api.post("/api/v1/batches", json={"operations": [finished(seq=-1)]}), 422, "KitaruUsageError", "seq")
    assert_error(api.post("/api/v1/batches", json={"operations": [finished(exec_id="ghost")]}), 409, "KitaruConflictError")
    assert api.get("/api/v1/executions/e1/logs").json()["items"] == []  # nothing of a refused batch was written


def test_wait_input_validates_conflicts_and_404s(api):
    new_execution(api)
    open_gate(api, schema={"type": "integer"})
    assert [w["name"] for w in api.get("/api/v1/executions/e1/waits", params={"status": "pending"}).json()["items"]] == ["gate"]
    assert_error(
        api.post("/api/v1/executions/e1/waits/gate/input", json={"value": "seven"}), 422, "KitaruWaitValidationError", "integer"
    )
    assert_error(
        api.post("/api/v1/executions/e1/waits/nope/input", json={"value": 1}), 404, "KitaruNotFoundError", "no wait named"
    )
    assert_error(api.post("/api/v1/executions/e1/waits/gate/input", json={}), 422, "KitaruUsageError", "value")
    answered = api.post("/api/v1/executions/e1/waits/gate/input", json={"value": 7})
    assert answered.status_code == 200 and answered.json()["exec_id"] == "e1"
    assert api.get("/api/v1/executions/e1/waits/gate").json()["value"] == 7
    assert_error(
        api.post("/api/v1/executions/e1/waits/gate/input", json={"value": 8}), 409, "KitaruConflictError", "already answered"
    )
    assert_error(api.post("/api/v1/executions/e1/waits/gate/abort"), 409, "KitaruConflictError")


def test_a_wait_input_race_has_exactly_one_winner(service, admin_key):
    with serve_in_thread(create_app(service=service, storage_url=STORAGE)) as url:
        headers = {"Authorization": f"Bearer {admin_key}"}
        with httpx.Client(base_url=url, headers=headers) as api:
            new_execution(api)
            open_gate(api)
            barrier = threading.Barrier(4)
            statuses = []

            def answer(value):
                with httpx.Client(base_url=url, headers=headers) as own:
                    barrier.wait()
                    statuses.append(own.post("/api/v1/executions/e1/waits/gate/input", json={"value": value}).status_code)

            threads = [threading.Thread(target=answer, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    assert sorted(statuses) == [200, 409, 409, 409]


def test_logs_and_events_page_by_id(api):
    new_execution(api)
    entries = [
        {"exec_id": "e1", "timestamp": float(i), "level": "INFO", "message": f"line {i}", "source": "runner"} for i in range(5)
    ]
    api.post("/api/v1/batches", json={"operations": [{"op": "logs", "entries": entries}]})
    first = api.get("/api/v1/executions/e1/logs", params={"limit": 3}).json()
    assert [r["message"] for r in first["items"]] == ["line 0", "line 1", "line 2"]
    rest = api.get("/api/v1/executions/e1/logs", params={"after_id": first["next_after_id"]}).json()
    assert [r["message"] for r in rest["items"]] == ["line 3", "line 4"] and rest["next_after_id"] is None
    assert api.get("/api/v1/executions/e1/logs", params={"source": "step"}).json()["items"] == []
    assert api.get("/api/v1/executions/e1/events").json()["items"] == []


def read_sse(lines):
    events, current = [], {}
    for line in lines:
        if not line:
            if current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            current[field] = value
    return events


def test_log_stream_resumes_from_an_id_and_ends_with_the_execution(api):
    new_execution(api)
    entries = [
        {"exec_id": "e1", "timestamp": float(i), "level": "INFO", "message": f"line {i}", "source": "runner"} for i in range(3)
    ]
    api.post("/api/v1/batches", json={"operations": [{"op": "logs", "entries": entries}]})
    api.post("/api/v1/executions/e1/finish", json={"driver_id": "d1", "status": "completed"})
    with api.stream("GET", "/api/v1/executions/e1/logs/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_sse(response.iter_lines())
    assert [json.loads(e["data"])["message"] for e in events if e.get("event") == "log"] == ["line 0", "line 1", "line 2"]
    assert events[-1]["event"] == "end"
    first_id = events[0]["id"]
    with api.stream("GET", "/api/v1/executions/e1/logs/stream", headers={"Last-Event-ID": first_id}) as response:
        resumed = read_sse(response.iter_lines())
    assert [json.loads(e["data"])["message"] for e in resumed if e.get("event") == "log"] == ["line 1", "line 2"]
    assert_error(api.get("/api/v1/executions/nope/events/stream"), 404, "KitaruNotFoundError")


def test_the_server_survives_a_client_disconnecting_mid_stream(service, admin_key):
    headers = {"Authorization": f"Bearer {admin_key}"}
    with (
        serve_in_thread(create_app(service=service, storage_url=STORAGE)) as url,
        httpx.Client(base_url=url, headers=headers) as api,
    ):
        new_execution(api)
        api.post(
            "/api/v1/batches",
            json={
                "operations": [
                    {"op": "events", "entries": [{"exec_id": "e1", "timestamp": 1.0, "kind": "progress", "payload": {"n": 1}}]}
                ]
            },
        )
        for _ in range(3):
            with httpx.Client(base_url=url, headers=headers, timeout=5) as streaming:
                with streaming.stream("GET", "/api/v1/executions/e1/events/stream", params={"poll": 0.05}) as response:
                    for line in response.iter_lines():
                        if line.startswith("data:"):
                            break  # hang up while the server is still streaming (the execution runs on)
        assert api.get("/health").status_code == 200
        entry = {"exec_id": "e1", "timestamp": 2.0, "kind": "progress", "payload": {"n": 2}}
        assert api.post("/api/v1/batches", json={"operations": [{"op": "events", "entries": [entry]}]}).status_code == 200
        assert len(api.get("/api/v1/executions/e1/events").json()["items"]) == 2


def test_models_and_secrets_never_return_values(api, service, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("KITARU_SECRET_KEY", Fernet.generate_key().decode())
    assert (
        api.put("/api/v1/models/fast", json={"model": "openai/gpt-5-nano", "secret": "creds", "default": True}).status_code == 200
    )
    assert api.get("/api/v1/models/fast").json()["model"] == "openai/gpt-5-nano"
    assert api.get("/api/v1/models/unknown").json() is None
    assert api.get("/api/v1/default-model").json()["alias"] == "fast"
    assert [m["alias"] for m in api.get("/api/v1/models").json()["items"]] == ["fast"]
    created = api.put("/api/v1/secrets/creds", json={"values": {"OPENAI_API_KEY": "sk-123"}})
    assert created.json()["keys"] == ["OPENAI_API_KEY"] and "sk-123" not in created.text
    for path in ("/api/v1/secrets", "/api/v1/secrets/creds"):
        assert "sk-123" not in api.get(path).text
    runtime = service.create_api_key("runtime", kind="service_account")["key"]
    assert api.get("/api/v1/secrets/creds/values", headers={"Authorization": f"Bearer {runtime}"}).json() == {
        "OPENAI_API_KEY": "sk-123"
    }  # a service-account key (runtimes); an admin user key may not
    member = service.create_api_key("member")["key"]
    assert_error(api.get("/api/v1/secrets/creds/values", headers={"Authorization": f"Bearer {member}"}), 403, "KitaruAuthError")
    assert api.delete("/api/v1/secrets/creds").json() == {"deleted": "creds"}
    assert_error(api.get("/api/v1/secrets/creds"), 404, "KitaruNotFoundError")


def test_ready_is_503_when_the_database_is_unreachable(service):
    from sqlalchemy import create_engine

    service._read = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    with TestClient(create_app(service=service, auth=False, storage_url=STORAGE), base_url="http://127.0.0.1") as client:
        response = client.get("/ready")
    assert response.status_code == 503 and response.json()["database"] is False
