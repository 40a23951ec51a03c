"""Remote mode's service: the same methods and results as the embedded service, errors, timeouts, retries."""

import inspect
import socket
import time

import pytest
from kitaru_server import KitaruService
from kitaru_server.api import create_app
from kitaru_server.testing import serve_in_thread

from kitaru.client._http import HttpService
from kitaru.errors import (
    KitaruBackendError,
    KitaruConflictError,
    KitaruNotFoundError,
    KitaruStateError,
    KitaruUsageError,
    KitaruWaitValidationError,
)

# Server-side only: readiness, closing the database, and the bootstrap that `kitaru server start` does in-process.
# and what the API does itself around a client's call: checking stored objects' storage, recording who continued.
SERVER_ONLY = {"ping", "bootstrap_admin_key", "run_facts", "record_continuation", "recently_verified_key"}
STORAGE = "file:///srv/kitaru"  # the server's storage for the default stack (nothing is read from it here)
SETTINGS = {"storage_url": STORAGE, "storage_options": {}}
STORED = {
    "uri": f"{STORAGE}/objects/ab/{'ab' * 32}",
    "digest": "ab" * 32,
    "digest_algorithm": "blake3",
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
def remote(service):
    key = service.create_api_key("runtime", kind="service_account", admin=True)["key"]
    with serve_in_thread(create_app(service=service, storage_url=STORAGE)) as url:
        http = HttpService(url, key)
        yield http
        http.close()


def public_methods(cls):
    return {name: inspect.signature(fn) for name, fn in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def test_both_implement_the_service_protocol_of_the_contracts():
    """Every operation of :class:`kitaru.contracts.service.Service`, with its signature, in both implementations."""
    from kitaru.contracts.service import Service

    protocol = public_methods(Service)
    for cls in (KitaruService, HttpService):
        methods = public_methods(cls)
        assert set(protocol) <= set(methods), cls
        for name, signature in protocol.items():
            assert [(p.name, p.kind, p.default) for p in methods[name].parameters.values()] == [
                (p.name, p.kind, p.default) for p in signature.parameters.values()
            ], (cls, name)
    # nothing the protocol does not name, but closing and the credentials the server brokers (remote mode only)
    assert set(public_methods(HttpService)) - set(protocol) <= {"close", "stack_credentials"}


def test_http_service_has_every_service_method_with_the_same_signature():
    embedded, remote = public_methods(KitaruService), public_methods(HttpService)
    assert set(embedded) - SERVER_ONLY == set(remote)
    for name, signature in remote.items():
        expected = embedded[name]
        assert [(p.name, p.kind, p.default) for p in signature.parameters.values()] == [
            (p.name, p.kind, p.default) for p in expected.parameters.values()
        ], name


def test_remote_results_equal_embedded_results(service, remote, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("KITARU_SECRET_KEY", Fernet.generate_key().decode())
    created = remote.create_execution(
        {
            "exec_id": "e1",
            "flow": "f",
            "flow_ref": "m:f",
            "settings": {**SETTINGS, "a": [1, 2.5, None]},
            "driver_id": "d1",
            "lease_expires_at": time.time() + 30,
            "inputs": {"preview": {"x": 1}},
        }
    )
    assert created == service.get_execution("e1", with_calls=False)
    remote.apply(
        [
            {
                "op": "call_started",
                "exec_id": "e1",
                "call_id": "c1",
                "invocation_id": "step",
                "seq": 0,
                "name": "step",
                "attempt": 1,
                "started_at": 1.0,
                "created_at": 1.0,
                "parent_call_ids": [],
                "checkpoint_type": None,
                "original_call_id": None,
            },
            {
                "op": "attempt_finished",
                "exec_id": "e1",
                "call_id": "c1",
                "invocation_id": "step",
                "seq": 0,
                "name": "step",
                "attempt": 1,
                "status": "completed",
                "started_at": 1.0,
                "ended_at": 2.0,
                "output": STORED,
                "cache_key": "k" * 64,
                "metadata": {"m": True},
                "artifacts": [{"name": "saved", "meta": STORED, "tags": ["output"]}],
                "logs": [
                    {
                        "exec_id": "e1",
                        "timestamp": 1.5,
                        "level": "INFO",
                        "message": "héllo",
                        "source": "step",
                        "invocation_id": "step",
                        "attempt": 1,
                    }
                ],
                "events": [
                    {"exec_id": "e1", "timestamp": 1.6, "kind": "progress", "invocation_id": "step", "payload": {"p": 50}}
                ],
            },
            {"op": "metadata", "exec_id": "e1", "fields": {"k": "v"}},
        ]
    )
    remote.open_wait("e1", "d1", {"name": "gate", "seq": 1, "question": "ok?", "schema": {"type": "boolean"}, "metadata": {}})
    remote.register_model("fast", "openai/gpt-5-nano", secret="creds", default=True)
    remote.set_secret("creds", {"OPENAI_API_KEY": "sk-1"})
    remote.create_stack("team", storage_url="file:///tmp/x", storage_options={"anon": True})
    same = [
        ("get_execution", ("e1",), {}),
        ("get_execution", ("e1",), {"with_calls": False}),
        ("list_executions", (), {"status": "waiting"}),
        ("list_executions", (), {"flow": "f", "limit": 5, "offset": 0}),
        ("count_executions", (), {}),
        ("execution_counts", (), {}),
        ("existing_calls", ("e1",), {}),
        ("find_cached_output", ("k" * 64,), {}),
        ("find_cached_output", ("missing",), {}),
        ("list_artifacts", (), {"exec_id": "e1"}),
        ("find_artifact", ("e1", "saved"), {}),
        ("get_logs", ("e1",), {}),
        ("get_logs", ("e1",), {"source": "runner"}),
        ("get_events", ("e1",), {"after_id": 0}),
        ("list_waits", ("e1",), {}),
        ("list_waits", ("unknown",), {"status": "pending"}),
        ("get_wait", ("e1", "gate"), {}),
        ("cancel_requested", ("e1",), {}),
        ("list_models", (), {}),
        ("get_model", ("fast",), {}),
        ("get_model", ("nope",), {}),
        ("default_model", (), {}),
        ("list_secrets", (), {}),
        ("get_secret", ("creds",), {}),
        ("secret_values", ("creds",), {}),
        ("list_stacks", (), {}),
        ("get_stack", ("team",), {}),
    ]
    for name, args, kwargs in same:
        assert getattr(remote, name)(*args, **kwargs) == getattr(service, name)(*args, **kwargs), name
    admin = HttpService(remote.url, service.create_api_key("admin", admin=True)["key"])
    assert admin.list_api_keys(include_revoked=True) == service.list_api_keys(include_revoked=True)
    admin.close()
    artifact = service.list_artifacts(exec_id="e1")[0]
    assert remote.get_artifact(artifact["artifact_id"]) == artifact
    assert remote.renew_lease("e1", "d1", 30) is True and remote.renew_lease("e1", "x", 30) is False
    assert remote.settle_wait("e1", "gate", status="answered", value=True)["exec_id"] == "e1"
    assert remote.set_live_status("e1", "d1", "running") is True
    assert remote.finish_execution("e1", "d1", "completed", result=STORED) is True
    assert remote.get_execution("e1") == service.get_execution("e1")


def test_errors_keep_their_class_and_fields(service, remote):
    with pytest.raises(KitaruNotFoundError, match="'nope' not found") as caught:
        remote.get_execution("nope")
    assert caught.value.exec_id == "nope"
    remote.create_execution(
        {
            "exec_id": "e1",
            "flow": "f",
            "flow_ref": "m:f",
            "settings": SETTINGS,
            "driver_id": "d1",
            "lease_expires_at": time.time() + 30,
        }
    )
    with pytest.raises(KitaruConflictError):
        remote.create_execution({"exec_id": "e1", "flow": "f", "flow_ref": "m:f", "settings": SETTINGS})
    with pytest.raises(KitaruStateError, match="is running") as state:
        remote.claim_execution("e1", "d2", 5, from_statuses=["interrupted"])
    assert state.value.status == "running"
    remote.open_wait("e1", "d1", {"name": "n", "seq": 0, "schema": {"type": "integer"}, "metadata": {}})
    with pytest.raises(KitaruWaitValidationError, match="integer"):
        remote.settle_wait("e1", "n", status="answered", value="x")
    plain = HttpService(remote.url, service.create_api_key("plain", kind="service_account")["key"])
    with pytest.raises(KitaruUsageError, match="is not an admin key"):
        plain.create_api_key("someone")  # a service account without admin
    plain.close()
    with pytest.raises(KitaruUsageError, match="the request is invalid"):
        remote.apply([{"op": "logs", "entries": [{"exec_id": "e1"}]}])


def test_a_wrong_or_missing_key_is_a_usage_error_saying_so(service, remote):
    with pytest.raises(KitaruUsageError, match=f"at {remote.url} refused the API key"):
        HttpService(remote.url, "ktr_0123456789abcdef.wrongwrongwrongwrongwrong").list_executions()
    with pytest.raises(KitaruUsageError, match="requires an API key"):
        HttpService(remote.url, None).count_executions()
    assert remote.verify_api_key("wrong") is None


def test_an_unreachable_server_fails_fast_naming_its_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens here once the socket closes
    with socket.socket() as backlog:  # a listener that never accepts: once its backlog is full, connects hang
        backlog.bind(("127.0.0.1", 0))
        backlog.listen(0)
        port = backlog.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        time.sleep(0.1)
        for url in (refused, f"http://127.0.0.1:{port}"):
            started = time.monotonic()
            with pytest.raises(KitaruBackendError, match=f"cannot reach the Kitaru server at {url}"):
                HttpService(url, "key").list_executions()
            assert time.monotonic() - started < 3.5
        for filler in fillers:
            filler.close()


def test_an_http_server_that_is_not_kitaru_is_named():
    async def other(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<html>nope</html>"})

    with serve_in_thread(other) as url, pytest.raises(KitaruBackendError, match=f"{url} is not a Kitaru server"):
        HttpService(url, "key").get_execution("e1")


def test_batches_ride_out_transient_failures_and_other_calls_do_not_retry(service):
    app = create_app(service=service, auth=False, storage_url=STORAGE)
    failures = {"left": 2}

    async def flaky(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/api/v1/batches" and failures["left"]:
            failures["left"] -= 1
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"restarting"})
            return
        await app(scope, receive, send)

    with serve_in_thread(flaky) as url:
        http = HttpService(url)
        http.create_execution({"exec_id": "e1", "flow": "f", "flow_ref": "m:f", "settings": SETTINGS})
        http.apply(
            [
                {
                    "op": "logs",
                    "entries": [{"exec_id": "e1", "timestamp": 1.0, "level": "INFO", "message": "m", "source": "runner"}],
                }
            ]
        )
        assert failures["left"] == 0 and [r["message"] for r in http.get_logs("e1")] == ["m"]
        failures["left"] = 1
        with pytest.raises(KitaruBackendError, match="failed \\(503"):
            http._http.request("POST", "/batches", json={"operations": []})  # without retry=True: fails at once
        http.close()
