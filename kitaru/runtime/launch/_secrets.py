"""The Kitaru API key of a cloud job, read from the cloud's secret store when its node starts.

A backend with an ``api_key_secret`` option puts no key in the job's environment, only a reference
(``KITARU_API_KEY_SECRET``, JSON): ``{"source": "aws-secretsmanager", "secret": ARN_OR_NAME,
"region": REGION}`` (read with boto3 and the job's role) or ``{"source": "gcp-secretmanager",
"secret": "projects/P/secrets/S/versions/V"}`` (read with ``google-cloud-secret-manager`` and the
job's service account; ``KITARU_SECRET_MANAGER_ENDPOINT`` points it at a private endpoint). The
launcher reads it on the head, which runs the driver.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = ["API_KEY_SECRET_ENV", "SECRET_MANAGER_ENDPOINT_ENV", "read_api_key", "secret_reference"]

API_KEY_SECRET_ENV = "KITARU_API_KEY_SECRET"
SECRET_MANAGER_ENDPOINT_ENV = "KITARU_SECRET_MANAGER_ENDPOINT"
_TIMEOUT = 30


def secret_reference(source: str, secret: str, **more: str) -> dict[str, str]:
    """The job environment naming the secret that holds the API key (instead of the key)."""
    return {API_KEY_SECRET_ENV: json.dumps({"source": source, "secret": secret, **more}, separators=(",", ":"))}


def read_api_key(environ: Mapping[str, str]) -> dict[str, str]:
    """``{"KITARU_API_KEY": key}`` read from the secret ``environ`` names; empty when it names none.

    Raises:
        KitaruUsageError: the reference is malformed, or the secret cannot be read or is empty (one line naming it).
    """
    raw = environ.get(API_KEY_SECRET_ENV)
    if not raw:
        return {}
    try:
        ref = json.loads(raw)
        source, secret = ref["source"], ref["secret"]
    except (ValueError, TypeError, KeyError):
        raise KitaruUsageError(f"{API_KEY_SECRET_ENV} is not a secret reference: {raw[:120]!r}.") from None
    if source == "aws-secretsmanager":
        key = _aws(secret, ref.get("region"))
    elif source == "gcp-secretmanager":
        key = _gcp(secret, environ.get(SECRET_MANAGER_ENDPOINT_ENV))
    else:
        raise KitaruUsageError(f"{API_KEY_SECRET_ENV} names an unknown secret store {source!r}.")
    if not key.strip():
        raise KitaruUsageError(f"secret {secret} is empty; store the Kitaru API key in it.")
    return {"KITARU_API_KEY": key.strip()}


def _aws(secret: str, region: str | None) -> str:
    try:
        import boto3
    except ImportError:
        raise KitaruUsageError("reading the API key from AWS Secrets Manager needs boto3 in the image.") from None
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=_TIMEOUT)
    try:
        value = boto3.client("secretsmanager", region_name=region, config=config).get_secret_value(SecretId=secret)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise KitaruUsageError(
            f"cannot read the Kitaru API key from AWS Secrets Manager secret {secret}: {error.get('Code')}: "
            f"{error.get('Message')}; check the secret and that the job's role may secretsmanager:GetSecretValue it."
        ) from None
    except BotoCoreError as exc:
        raise KitaruUsageError(f"cannot read the Kitaru API key from AWS Secrets Manager secret {secret}: {exc}.") from None
    return _key_of(value.get("SecretString") or (value.get("SecretBinary") or b"").decode(errors="replace"))


def _gcp(secret: str, endpoint: str | None) -> str:
    try:
        from google.cloud import secretmanager_v1
    except ImportError:
        raise KitaruUsageError("reading the API key from Secret Manager needs google-cloud-secret-manager.") from None
    from google.api_core import exceptions
    from google.api_core.client_options import ClientOptions
    from google.auth.exceptions import DefaultCredentialsError

    try:
        client = secretmanager_v1.SecretManagerServiceClient(
            transport="rest", client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None
        )
        response = client.access_secret_version(name=secret, timeout=_TIMEOUT)
    except DefaultCredentialsError as exc:
        raise KitaruUsageError(f"cannot read secret {secret}: no Google Cloud credentials ({exc}).") from None
    except exceptions.GoogleAPICallError as exc:
        raise KitaruUsageError(
            f"cannot read the Kitaru API key from Secret Manager {secret}: {exc.code} {exc.message}; check the secret "
            "version and that the job's service account has roles/secretmanager.secretAccessor on it."
        ) from None
    except Exception as exc:
        if type(exc).__module__.startswith("google.auth"):  # a token refused, then not refreshed
            raise KitaruUsageError(
                f"the job's Google Cloud credentials could not read {secret} ({type(exc).__name__}); check its service account."
            ) from None
        if type(exc).__module__.startswith(("requests", "urllib3")):
            raise KitaruUsageError(f"cannot reach Secret Manager to read {secret} ({type(exc).__name__}).") from None
        raise
    return _key_of(response.payload.data.decode(errors="replace"))


def _key_of(text: str) -> str:
    """The secret's value, or its ``api_key`` field when it is a JSON object (the AWS console's key/value form)."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        return text
    return str(value.get("api_key", "")) if isinstance(value, dict) else text
