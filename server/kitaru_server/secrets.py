"""Model aliases and secrets (part of the service layer).

Secret values are encrypted at rest with Fernet (AES-128-CBC + HMAC). The key
is ``KITARU_SECRET_KEY`` (read when the service first touches a secret), else a
key file next to the SQLite database (``<db dir>/secret.key``, mode 0600,
created on first use). Only
:meth:`SecretOperations.secret_values` decrypts, for the runtime; every other
operation returns names and keys, never values.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update

from kitaru.errors import KitaruUsageError
from kitaru_server import tables as t
from kitaru_server.errors import NotFoundError

__all__ = ["SecretOperations", "load_secret_key"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_KEY_FILE = "secret.key"


class SecretOperations:
    """Mixed into :class:`~kitaru_server.service.KitaruService` (uses its engines and URL)."""

    database_url: str
    _write: Any
    _read: Any

    # --- model aliases --------------------------------------------------------------------------

    def register_model(
        self, alias: str, model: str, *, secret: str | None = None, base_url: str | None = None, default: bool = False
    ) -> dict[str, Any]:
        """Create or replace the alias ``alias`` for ``model``; ``default=True`` makes it the default alias."""
        _check_name(alias, "model alias")
        if secret is not None:
            _check_name(secret, "secret name")
        row = {
            "alias": alias,
            "model": model,
            "secret": secret,
            "base_url": base_url,
            "is_default": default,
            "created_at": time.time(),
        }
        with self._write.begin() as conn:
            if default:
                conn.execute(update(t.models).values(is_default=False))
            conn.execute(delete(t.models).where(t.models.c.alias == alias))
            conn.execute(insert(t.models).values(**row))
        return row

    def list_models(self) -> list[dict[str, Any]]:
        """Every model alias, by name."""
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(select(t.models).order_by(t.models.c.alias)).mappings()]

    def get_model(self, alias: str) -> dict[str, Any] | None:
        """The alias ``alias``, or ``None`` when it is not registered."""
        with self._read.connect() as conn:
            row = conn.execute(select(t.models).where(t.models.c.alias == alias)).mappings().first()
        return dict(row) if row else None

    def default_model(self) -> dict[str, Any] | None:
        """The alias registered with ``default=True``, if any."""
        with self._read.connect() as conn:
            row = conn.execute(select(t.models).where(t.models.c.is_default.is_(True))).mappings().first()
        return dict(row) if row else None

    def delete_model(self, alias: str) -> None:
        """Remove an alias. Raises NotFoundError."""
        with self._write.begin() as conn:
            if conn.execute(delete(t.models).where(t.models.c.alias == alias)).rowcount == 0:
                raise NotFoundError(f"model alias {alias!r} is not registered; list aliases with `kitaru model list`.")

    # --- secrets --------------------------------------------------------------------------------

    def set_secret(self, name: str, values: dict[str, str]) -> dict[str, Any]:
        """Create the secret ``name``, or update the given keys of an existing one. Returns its keys, not its values."""
        _check_name(name, "secret name")
        if not values:
            raise KitaruUsageError(f"secret {name!r} needs at least one value, e.g. OPENAI_API_KEY=sk-...")
        for key, value in values.items():
            if not isinstance(value, str):
                raise KitaruUsageError(f"secret value {key!r} must be a string, not {type(value).__name__}.")
        now = time.time()
        with self._write.begin() as conn:
            row = conn.execute(select(t.secrets).where(t.secrets.c.name == name)).mappings().first()
            merged = {**(self._decrypt(name, row["ciphertext"]) if row else {}), **values}
            ciphertext = self._fernet().encrypt(json.dumps(merged).encode()).decode()
            fields = {"keys": sorted(merged), "ciphertext": ciphertext, "updated_at": now}
            if row is None:
                conn.execute(insert(t.secrets).values(name=name, created_at=now, **fields))
            else:
                conn.execute(update(t.secrets).where(t.secrets.c.name == name).values(**fields))
        return self.get_secret(name)

    def get_secret(self, name: str) -> dict[str, Any]:
        """The secret's name, keys and timestamps (never its values). Raises NotFoundError."""
        with self._read.connect() as conn:
            row = conn.execute(select(*_PUBLIC_COLUMNS).where(t.secrets.c.name == name)).mappings().first()
        if row is None:
            raise _secret_not_found(name)
        return dict(row)

    def list_secrets(self) -> list[dict[str, Any]]:
        """Every secret's name, keys and timestamps (never values)."""
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(select(*_PUBLIC_COLUMNS).order_by(t.secrets.c.name)).mappings()]

    def delete_secret(self, name: str) -> None:
        """Delete a secret. Raises NotFoundError."""
        with self._write.begin() as conn:
            if conn.execute(delete(t.secrets).where(t.secrets.c.name == name)).rowcount == 0:
                raise _secret_not_found(name)

    def secret_values(self, name: str) -> dict[str, str]:
        """The decrypted values of a secret. For the runtime only: never expose them through a client."""
        with self._read.connect() as conn:
            row = conn.execute(select(t.secrets.c.ciphertext).where(t.secrets.c.name == name)).first()
        if row is None:
            raise _secret_not_found(name)
        return self._decrypt(name, row.ciphertext)

    # --- helpers --------------------------------------------------------------------------------

    def _fernet(self) -> Any:
        fernet = getattr(self, "_secret_fernet", None)
        if fernet is None:
            from cryptography.fernet import Fernet

            key = load_secret_key(self.database_url)
            try:
                fernet = self._secret_fernet = Fernet(key)
            except ValueError:
                raise KitaruUsageError(
                    "the secret key (KITARU_SECRET_KEY or secret.key beside the database) is not a Fernet key; generate one with "
                    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'."
                ) from None
        return fernet

    def _decrypt(self, name: str, ciphertext: str) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        try:
            values: dict[str, str] = json.loads(self._fernet().decrypt(ciphertext.encode()))
        except InvalidToken:
            raise KitaruUsageError(
                f"secret {name!r} cannot be decrypted with the current key; set KITARU_SECRET_KEY to the key it was stored "
                "with, or store the secret again with `kitaru secrets set`."
            ) from None
        return values


_PUBLIC_COLUMNS = (t.secrets.c.name, t.secrets.c["keys"], t.secrets.c.created_at, t.secrets.c.updated_at)
_key_lock = threading.Lock()


def load_secret_key(database_url: str) -> bytes:
    """The Fernet key: ``KITARU_SECRET_KEY``, else the key file beside a SQLite database (created on first use)."""
    from_env = os.environ.get("KITARU_SECRET_KEY")
    if from_env:
        return from_env.encode()
    path = _key_path(database_url)
    with _key_lock:
        if not path.exists():
            _create_key_file(path)
        return path.read_bytes().strip()


def _key_path(database_url: str) -> Path:
    database = database_url.split("///", 1)[1] if database_url.startswith("sqlite") and "///" in database_url else ""
    if not database or database == ":memory:":
        raise KitaruUsageError(
            "secrets need an encryption key: set KITARU_SECRET_KEY to a Fernet key "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        )
    return Path(database).parent / _KEY_FILE


def _create_key_file(path: Path) -> None:
    """Write a new key atomically; a concurrent process creating it first wins (``link`` fails if it exists)."""
    from cryptography.fernet import Fernet

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise KitaruUsageError(
            f"{what} {name!r} is not valid; use letters, digits, '_', '.' or '-' (up to 128 characters, no '/')."
        )


def _secret_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"secret {name!r} not found; list secrets with `kitaru secrets list` or create it with `kitaru secrets set`."
    )
