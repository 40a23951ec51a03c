"""The credential broker: short-lived credentials scoped to a stack's storage prefix, from the real cloud SDKs.

S3: moto's STS ``AssumeRole`` (moto ignores session policies, so the session policy is also evaluated with
moto's own IAM policy evaluator). GCS: the real ``google.auth.downscoped`` flow; its token exchange, which
always targets Google's STS, is rerouted to a loopback stand-in (no account is reachable here), and the
credential access boundary it sends is asserted. Azure: Azurite over HTTPS with OAuth, a user-delegation SAS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import httpx
import pytest
from kitaru_server.credentials import broker_credentials, s3_session_policy

from kitaru.errors import KitaruBackendError, KitaruUsageError
from kitaru.storage import Storage

TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}


def _role(endpoint: str) -> str:
    iam = boto3.client(
        "iam", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    name = f"kitaru-broker-{time.monotonic_ns()}"
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]


@pytest.fixture
def server(tmp_path, monkeypatch, s3_emulator):
    """The API with auth on, a stack ``team-a`` on ``s3://kitaru/team-a`` brokered through STS, and an admin and a user key."""
    from kitaru_server import service_for
    from kitaru_server.api import create_app
    from kitaru_server.testing import serve_in_thread

    service = service_for(f"sqlite:///{tmp_path / 'kitaru.db'}")
    admin = service.create_api_key("admin", kind="service_account", admin=True)["key"]
    user = service.create_api_key("runner", kind="user", admin=False)["key"]
    service.set_secret("aws-root", {"aws_access_key_id": "test", "aws_secret_access_key": "test"})
    public = {k: v for k, v in s3_emulator.options.items() if k in ("endpoint_url", "client_kwargs")}
    credentials = {
        "provider": "aws",
        "role_arn": _role(s3_emulator.endpoint),
        "secret": "aws-root",
        "sts_endpoint_url": s3_emulator.endpoint,
    }
    service.create_stack(
        "team-a", storage_url="s3://kitaru/team-a", storage_options=public, backend_options={"credentials": credentials}
    )
    service.create_stack("plain", storage_url="s3://kitaru/plain")
    service.create_stack(
        "local", storage_url=tmp_path.as_uri(), backend_options={"credentials": {"provider": "aws", "role_arn": "x"}}
    )
    with serve_in_thread(create_app(service=service, auth=True)) as url:
        yield url, admin, user


def test_s3_credentials_are_short_lived_and_work_inside_the_prefix(server, s3_emulator):
    url, _admin, user = server
    answer = httpx.post(f"{url}/api/v1/stacks/team-a/credentials", headers={"Authorization": f"Bearer {user}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    options = body["storage_options"]
    assert {"key", "secret", "token"} <= options.keys() and options["key"] != "test"
    assert 3500 < body["expires_at"] - time.time() <= 3600
    storage = Storage(body["storage_url"], options)
    stored = storage.put(b"written with brokered credentials")
    assert bytes(storage.get(stored.uri, stored.digest)) == b"written with brokered credentials"


def test_the_s3_session_policy_allows_the_stack_prefix_only():
    """Evaluated with moto's IAM policy evaluator (moto's STS does not apply session policies itself)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    policy = IAMPolicy(json.dumps(s3_session_policy("kitaru", "team-a")))
    inside = "arn:aws:s3:::kitaru/team-a/objects/ab/abcd"
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
        assert policy.is_action_permitted(action, inside) == PermissionResult.PERMITTED
    for resource in (
        "arn:aws:s3:::kitaru/team-b/objects/ab/abcd",
        "arn:aws:s3:::kitaru/team-a-other/x",
        "arn:aws:s3:::other/team-a/x",
    ):
        assert policy.is_action_permitted("s3:GetObject", resource) != PermissionResult.PERMITTED
    assert policy.is_action_permitted("s3:DeleteBucket", "arn:aws:s3:::kitaru") != PermissionResult.PERMITTED
    assert policy.is_action_permitted("iam:CreateUser", "*") != PermissionResult.PERMITTED


def test_no_key_no_credentials_and_unbrokerable_stacks_say_why(server):
    url, admin, _user = server
    assert httpx.post(f"{url}/api/v1/stacks/team-a/credentials").status_code == 401
    auth = {"Authorization": f"Bearer {admin}"}
    plain = httpx.post(f"{url}/api/v1/stacks/plain/credentials", headers=auth)
    assert plain.status_code == 422 and "no credential broker configured" in plain.json()["message"]
    local = httpx.post(f"{url}/api/v1/stacks/local/credentials", headers=auth)
    assert local.status_code == 422 and "s3://" in local.json()["message"]
    assert httpx.post(f"{url}/api/v1/stacks/nope/credentials", headers=auth).status_code == 404


def test_an_sts_refusal_is_a_clear_bad_gateway(s3_emulator):
    stack = {
        "name": "broken",
        "storage_url": "s3://kitaru/broken",
        "backend_options": {
            "credentials": {"provider": "aws", "role_arn": "not-an-arn", "sts_endpoint_url": s3_emulator.endpoint}
        },
    }
    with pytest.raises(KitaruBackendError, match="could not broker aws credentials for stack 'broken'"):
        broker_credentials(stack, lambda _name: {"aws_access_key_id": "test", "aws_secret_access_key": "test"})


# --- GCS ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def sts_stand_in():
    """A loopback stand-in for Google's STS token exchange; it records each request's form."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
            seen.append({**form, "path": self.path})
            body = json.dumps(
                {
                    "access_token": "downscoped-token",
                    "issued_token_type": form["requested_token_type"],
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()


class Rerouted:
    """google-auth's requests transport, with Google's STS host rewritten to the loopback stand-in."""

    def __init__(self, target: str) -> None:
        from google.auth.transport.requests import Request

        self.target, self.inner = target, Request()

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        return self.inner(url.replace("https://sts.googleapis.com", self.target), method, body, headers, timeout, **kwargs)


def test_gcs_downscoped_token_carries_the_prefix_boundary(gcs_emulator):
    stack = {
        "name": "team-g",
        "storage_url": "gs://kitaru/team-g",
        "storage_options": {"endpoint_url": gcs_emulator.endpoint, "token": "anon"},
        "backend_options": {"credentials": {"provider": "gcp", "secret": "gcp-root"}},
    }
    with sts_stand_in() as (target, seen):
        body = broker_credentials(stack, lambda _name: {"access_token": "source-token"}, gcp_request=Rerouted(target))
    assert body["storage_options"] == {"endpoint_url": gcs_emulator.endpoint, "access_token": "downscoped-token"}
    assert 3500 < body["expires_at"] - time.time() <= 3600
    (exchange,) = seen
    assert exchange["path"] == "/v1/token" and exchange["subject_token"] == "source-token"
    (rule,) = json.loads(urllib.parse.unquote(exchange["options"]))["accessBoundary"]["accessBoundaryRules"]
    assert rule["availableResource"] == "//storage.googleapis.com/projects/_/buckets/kitaru"
    assert rule["availablePermissions"] == ["inRole:roles/storage.objectAdmin"]
    assert "buckets/kitaru/objects/team-g/" in rule["availabilityCondition"]["expression"]
    storage = Storage(body["storage_url"], body["storage_options"])  # fake-gcs-server checks no token: usable as given
    stored = storage.put(b"via a downscoped token")
    assert bytes(storage.get(stored.uri, stored.digest)) == b"via a downscoped token"


# --- Azure -------------------------------------------------------------------------------------------


def _self_signed(folder: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    import ipaddress

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return cert_path, key_path


def _jwt() -> str:
    import jwt

    now = int(time.time())
    claims = {
        "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
        "aud": "https://storage.azure.com",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "oid": "23657296-5cd5-45b0-a809-d972a7f4dfe1",
        "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
    }
    return jwt.encode(claims, "Azurite checks no signature of this token at all", algorithm="HS256")


@pytest.fixture(scope="module")
def azurite_https():
    """Azurite over HTTPS with OAuth (``--oauth basic``): user-delegation keys need both."""
    import emulators

    folder = tempfile.mkdtemp(prefix="kitaru-azurite-tls-")
    try:
        cert, key = _self_signed(folder)
        port = emulators.free_port()
        try:
            command = emulators.azurite_command(port, folder, "--cert", cert, "--key", key, "--oauth", "basic")
        except emulators.EmulatorMissing as exc:
            if emulators_required():
                pytest.fail(f"{exc}; CI must run every storage emulator.")
            pytest.skip(str(exc))
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            emulators._wait_for_port(port, process)
            yield f"https://127.0.0.1:{port}/{emulators.AZURITE_ACCOUNT}", cert
        finally:
            emulators._stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def emulators_required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_azure_user_delegation_sas_is_scoped_to_the_stack_container(azurite_https):
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobServiceClient, ContainerClient

    account_url, cert = azurite_https
    token = _jwt()

    class Bearer:
        def get_token(self, *_scopes, **_kwargs):
            from azure.core.credentials import AccessToken

            return AccessToken(token, int(time.time()) + 3600)

    with BlobServiceClient(account_url, credential=Bearer(), connection_verify=cert) as admin:
        for name in ("team-z", "other"):
            with contextlib.suppress(HttpResponseError):
                admin.create_container(name)
    stack = {
        "name": "team-z",
        "storage_url": "abfs://team-z",
        "backend_options": {"credentials": {"provider": "azure", "account_url": account_url, "secret": "az", "ca_bundle": cert}},
    }
    body = broker_credentials(stack, lambda _name: {"access_token": token})
    assert 3500 < body["expires_at"] - time.time() <= 3600
    sas = body["storage_options"]["connection_string"].split("SharedAccessSignature=", 1)[1]
    assert "skoid=" in sas and "sig=" in sas  # a user-delegation SAS, not an account-key one

    def container(name: str, signature: str) -> ContainerClient:
        return ContainerClient.from_container_url(f"{account_url}/{name}?{signature}", connection_verify=cert)

    with container("team-z", sas) as inside:
        inside.upload_blob("objects/ab/inside", b"allowed", overwrite=True)
        assert inside.download_blob("objects/ab/inside").readall() == b"allowed"
    with container("other", sas) as outside, pytest.raises(HttpResponseError) as refused:
        outside.upload_blob("objects/ab/outside", b"refused")
    assert refused.value.status_code == 403
    tampered = sas.replace("sp=", "sp=rwdlac&x=", 1) if "sp=" in sas else sas + "x"
    signature = urllib.parse.parse_qs(sas)["sig"][0]
    forged = sas.replace(urllib.parse.quote(signature, safe=""), urllib.parse.quote("A" + signature[1:], safe=""))
    for bad in {tampered, forged} - {sas}:
        with container("team-z", bad) as client, pytest.raises(HttpResponseError) as refused:
            client.upload_blob("objects/ab/forged", b"refused", overwrite=True)
        assert refused.value.status_code == 403


def test_a_provider_that_does_not_match_the_storage_is_refused():
    stack = {
        "name": "mixed",
        "storage_url": "gs://bucket/x",
        "backend_options": {"credentials": {"provider": "aws", "role_arn": "r"}},
    }
    with pytest.raises(KitaruUsageError, match="brokers aws credentials but its storage is 'gs://bucket/x'"):
        broker_credentials(stack, lambda _name: {})


def test_clients_use_brokered_credentials_and_renew_them_before_expiry(server, s3_emulator):
    """Storage opened on a brokered stack asks the server for credentials, never holds long-lived keys, and renews them."""
    from kitaru.storage import open_storage

    url, _admin, user = server
    options = {"endpoint_url": s3_emulator.endpoint, "kitaru_broker": "team-a"}
    storage = open_storage("s3://kitaru/team-a", options, service_url=url, api_key=user)
    first_key = storage.fs.key
    assert first_key not in (None, "test")
    stored = storage.put(b"before renewal")
    storage._renewal.renew_at = 0  # as when the credentials are about to expire mid-flow
    assert bytes(storage.get(stored.uri, stored.digest)) == b"before renewal"
    assert storage.fs.key not in (first_key, "test")  # fresh credentials, the work goes on
    assert storage._renewal.renew_at > time.time() + 3000


def test_a_brokered_stack_without_a_key_gets_no_credentials(server):
    from kitaru.storage import Storage
    from kitaru.storage._brokered import Renewal

    url, _admin, _user = server
    from kitaru.errors import KitaruError

    with pytest.raises(KitaruError, match="API key"):
        Storage("s3://kitaru/team-a", renewal=Renewal("team-a", url, None))


def test_malformed_broker_configuration_is_one_clear_line():
    for credentials, message in (
        (["aws"], "must be a JSON object"),
        ({"provider": "aws", "role_arn": "r", "duration_seconds": 60}, "900 to 43200 seconds"),
        ({"provider": "aws", "role_arn": "r", "secret": 7}, "must be a secret's name"),
    ):
        stack = {"name": "bad", "storage_url": "s3://bucket/x", "backend_options": {"credentials": credentials}}
        with pytest.raises(KitaruUsageError, match=message):
            broker_credentials(stack, lambda _name: {})
