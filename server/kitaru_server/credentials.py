"""The credential broker: short-lived storage credentials scoped to one stack's storage prefix.

How the server brokers a stack's credentials is server-side configuration, kept in the stack's
``backend_options["credentials"]``; the long-lived keys it uses come from a secret in the server's
secret store (named by ``secret``) or from the server's own environment, and never leave the server.
The server never reads or writes storage: it only asks the cloud for a scoped credential.

- ``{"provider": "aws", "role_arn": ..., "secret": NAME?, "sts_endpoint_url": URL?, "region": ...}``:
  STS ``AssumeRole`` with a session policy that allows the stack's prefix only. The secret holds
  ``aws_access_key_id`` and ``aws_secret_access_key``.
- ``{"provider": "gcp", "secret": NAME?}``: a downscoped token (``google.auth.downscoped``) whose
  credential access boundary allows the stack's bucket, objects under its prefix only. The secret
  holds ``service_account_json`` (else the server's application default credentials).
- ``{"provider": "azure", "account_url": URL, "secret": NAME}``: a user-delegation SAS for the stack's
  container (one container per stack). The secret holds ``tenant_id``, ``client_id`` and
  ``client_secret`` (or an ``access_token`` the operator keeps fresh).

Cloud SDKs are imported only when a stack of theirs is brokered.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from kitaru.errors import KitaruBackendError, KitaruUsageError

__all__ = ["DEFAULT_DURATION_SECONDS", "broker_credentials", "s3_session_policy", "gcs_access_boundary"]

DEFAULT_DURATION_SECONDS = 3600
_WRITE_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]


def broker_credentials(
    stack: dict[str, Any], secret_values: Callable[[str], dict[str, str]], *, gcp_request: Any = None
) -> dict[str, Any]:
    """Short-lived credentials for ``stack``'s storage, as the fsspec options a client opens it with.

    Args:
        stack: The stored stack (its ``storage_url`` and ``backend_options["credentials"]``).
        secret_values: Reads a secret of the server's secret store by name.
        gcp_request: The ``google.auth`` transport for the token exchange (the default reaches Google's STS).

    Returns:
        ``{"stack", "provider", "storage_url", "storage_options", "expires_at"}`` (``expires_at`` in epoch seconds).

    Raises:
        KitaruUsageError: the stack's storage cannot be brokered (no configuration, or a local path).
        KitaruBackendError: the cloud refused or could not be reached.
    """
    name, url = stack["name"], stack.get("storage_url") or ""
    config = (stack.get("backend_options") or {}).get("credentials") or {}
    if not isinstance(config, dict):
        raise KitaruUsageError(f"backend_options.credentials of stack {name!r} must be a JSON object.")
    provider = config.get("provider")
    scheme = url.split("://", 1)[0] if "://" in url else ""
    expected = {"aws": ("s3", "s3a"), "gcp": ("gs", "gcs"), "azure": ("abfs", "abfss", "az")}
    if provider not in expected:
        raise KitaruUsageError(
            f"stack {name!r} has no credential broker configured; set backend_options.credentials.provider to "
            "'aws', 'gcp' or 'azure' (server-side), or give the stack's storage options directly."
        )
    if scheme not in expected[provider]:
        raise KitaruUsageError(
            f"stack {name!r} brokers {provider} credentials but its storage is {url or 'unset'!r}; "
            f"credentials can be brokered for {', '.join(s + '://' for s in expected[provider])} storage only."
        )
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    prefix = prefix.strip("/")
    duration = config.get("duration_seconds") or DEFAULT_DURATION_SECONDS
    if not isinstance(duration, int) or not 900 <= duration <= 43200:
        raise KitaruUsageError(f"duration_seconds of stack {name!r}'s credentials must be 900 to 43200 seconds.")
    if not isinstance(config.get("secret") or "", str):
        raise KitaruUsageError(f"the credentials secret of stack {name!r} must be a secret's name.")
    secret = secret_values(config["secret"]) if config.get("secret") else {}
    try:
        if provider == "aws":
            options, expires_at = _aws(name, bucket, prefix, duration, config, secret)
        elif provider == "gcp":
            options, expires_at = _gcp(bucket, prefix, secret, gcp_request)
        else:
            options, expires_at = _azure(bucket, duration, config, secret)
    except (KitaruUsageError, KitaruBackendError):
        raise
    except Exception as exc:  # noqa: BLE001 - a cloud SDK's own error, named in one line
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        raise KitaruBackendError(
            f"could not broker {provider} credentials for stack {name!r} ({type(exc).__name__}: {detail}); "
            "check the server's credentials for it."
        ) from None
    public = {k: v for k, v in (stack.get("storage_options") or {}).items() if k in _PUBLIC_OPTIONS}
    return {
        "stack": name,
        "provider": provider,
        "storage_url": url,
        "storage_options": {**public, **options},
        "expires_at": expires_at,
    }


# Options of a stack's storage that name where it is (never who may use it): passed through with the credentials.
_PUBLIC_OPTIONS = ("endpoint_url", "client_kwargs", "project", "account_name", "account_host")


def s3_session_policy(bucket: str, prefix: str) -> dict[str, Any]:
    """The session policy of a stack's S3 credentials: objects under ``bucket/prefix`` and listing that prefix only."""
    objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    listing: dict[str, Any] = {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}"}
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": _WRITE_ACTIONS, "Resource": objects}, listing]}


def _aws(
    name: str, bucket: str, prefix: str, duration: int, config: dict[str, Any], secret: dict[str, str]
) -> tuple[dict[str, Any], float]:
    import boto3

    if not config.get("role_arn"):
        raise KitaruUsageError(
            f"stack {name!r} brokers aws credentials but names no role_arn; set it in its credentials options."
        )
    client = boto3.client(
        "sts",
        endpoint_url=config.get("sts_endpoint_url"),
        region_name=config.get("region", "us-east-1"),
        aws_access_key_id=secret.get("aws_access_key_id"),
        aws_secret_access_key=secret.get("aws_secret_access_key"),
    )
    answer = client.assume_role(
        RoleArn=config["role_arn"],
        RoleSessionName=f"kitaru-{name}"[:64],
        DurationSeconds=duration,
        Policy=json.dumps(s3_session_policy(bucket, prefix)),
    )["Credentials"]
    options = {"key": answer["AccessKeyId"], "secret": answer["SecretAccessKey"], "token": answer["SessionToken"]}
    return options, answer["Expiration"].timestamp()


def gcs_access_boundary(bucket: str, prefix: str) -> Any:
    """The credential access boundary of a stack's GCS token: object admin on ``bucket``, objects under ``prefix`` only."""
    from google.auth import downscoped

    condition = None
    if prefix:
        expression = (
            f"resource.name.startsWith('projects/_/buckets/{bucket}/objects/{prefix}/') || "
            f"api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('{prefix}')"
        )
        condition = downscoped.AvailabilityCondition(expression, title=f"kitaru prefix {prefix}")
    rule = downscoped.AccessBoundaryRule(
        available_resource=f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        available_permissions=["inRole:roles/storage.objectAdmin"],
        availability_condition=condition,
    )
    return downscoped.CredentialAccessBoundary(rules=[rule])


def _gcp(bucket: str, prefix: str, secret: dict[str, str], request: Any) -> tuple[dict[str, Any], float]:
    import google.auth
    from google.auth import downscoped
    from google.auth.transport.requests import Request

    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    if secret.get("service_account_json"):
        from google.oauth2 import service_account

        source = service_account.Credentials.from_service_account_info(json.loads(secret["service_account_json"]), scopes=scopes)
    elif secret.get("access_token"):
        source = _static_google_token(secret["access_token"])
    else:
        source, _project = google.auth.default(scopes=scopes)
    scoped = downscoped.Credentials(source_credentials=source, credential_access_boundary=gcs_access_boundary(bucket, prefix))
    scoped.refresh(request or Request())
    expiry = scoped.expiry.replace(tzinfo=dt.UTC).timestamp() if scoped.expiry else time.time() + DEFAULT_DURATION_SECONDS
    return {"access_token": scoped.token}, expiry


def _static_google_token(token: str) -> Any:
    """Source credentials over a token the operator keeps fresh: ``refresh`` keeps it as it is."""
    from google.auth.credentials import Credentials

    class StaticToken(Credentials):
        def refresh(self, request: Any) -> None:
            self.token = token

    return StaticToken()


class _StaticToken:
    """An Azure token credential over a bearer token the operator keeps fresh (``access_token`` in the secret)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *_scopes: str, **_kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 300)


def _azure(container: str, duration: int, config: dict[str, Any], secret: dict[str, str]) -> tuple[dict[str, Any], float]:
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

    if not config.get("account_url"):
        raise KitaruUsageError("an azure credential broker needs account_url (https://ACCOUNT.blob.core.windows.net).")
    if secret.get("access_token"):
        credential: Any = _StaticToken(secret["access_token"])
    else:
        from azure.identity import ClientSecretCredential

        credential = ClientSecretCredential(secret["tenant_id"], secret["client_id"], secret["client_secret"])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # clock skew between here and the service
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=duration)
    kwargs = {"connection_verify": config["ca_bundle"]} if config.get("ca_bundle") else {}
    with BlobServiceClient(config["account_url"], credential=credential, **kwargs) as service:
        key = service.get_user_delegation_key(start, expiry)
        account = service.account_name
    sas = generate_container_sas(
        account,
        container,
        user_delegation_key=key,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True),
        expiry=expiry,
        start=start,
    )
    endpoint = config["account_url"].rstrip("/")
    return {"connection_string": f"BlobEndpoint={endpoint};SharedAccessSignature={sas}"}, expiry.timestamp()
