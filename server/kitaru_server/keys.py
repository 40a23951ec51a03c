"""API keys for users and service accounts (part of the service layer).

A key is ``ktr_<key_id>.<secret>`` with 256 random bits of secret. Only its
SHA-256 is stored (a hash of a high-entropy token needs no salt or slow KDF);
the plain key is returned once, by :meth:`KeyOperations.create_api_key` and
:meth:`KeyOperations.rotate_api_key`. Verification looks the row up by the
key id and compares hashes in constant time. The API remembers a verified key
for a moment (:meth:`KeyOperations.recently_verified_key`), so a runtime's
stream of requests does not read its key each time; rotating or revoking a key
forgets it at once in this process, and within that moment in other server
processes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from typing import Any

from sqlalchemy import and_, insert, select, update

from kitaru.errors import KitaruUsageError
from kitaru_server import tables as t
from kitaru_server.errors import NotFoundError, StateError

__all__ = ["KEY_KINDS", "KeyOperations", "hash_key"]

KEY_KINDS = ("user", "service_account")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
_TOKEN = re.compile(r"^ktr_([0-9a-f]{16})\.([A-Za-z0-9_-]{20,128})$")
_LAST_USED_RESOLUTION = 60.0  # seconds: verifying a key writes its last use at most this often
_REMEMBERED_SECONDS = 2.0  # how long the API trusts a verified key without reading it again
_REMEMBERED_KEYS = 10_000
_PUBLIC = (
    "key_id",
    "name",
    "kind",
    "admin",
    "continue_others",
    "prefix",
    "created_at",
    "rotated_at",
    "revoked_at",
    "last_used_at",
)


def hash_key(token: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class KeyOperations:
    """Mixed into :class:`~kitaru_server.service.KitaruService` (uses its engines)."""

    _write: Any
    _read: Any
    _verified_keys: dict[str, tuple[float, dict[str, Any]]]  # key hash -> (trusted until, public record)

    def create_api_key(
        self, name: str, *, kind: str = "user", admin: bool = False, continue_others: bool = False
    ) -> dict[str, Any]:
        """Create a key; the result's ``key`` is the plain key, shown this once.

        Args:
            name: Who or what uses it (a user's name or a service account's).
            kind: ``user`` or ``service_account``.
            admin: Whether it is an admin key (manages keys, stacks, model aliases and secrets).
            continue_others: Whether a user key may resume, retry and replay executions other keys created
                (admin and service-account keys always may).
        """
        _check(name, kind)
        key_id = uuid.uuid4().hex[:16]
        token = _new_token(key_id)
        row = {
            "key_id": key_id,
            "name": name,
            "kind": kind,
            "admin": bool(admin),
            "continue_others": bool(continue_others),
            "prefix": token[:25],
            "key_hash": hash_key(token),
            "created_at": time.time(),
            "rotated_at": None,
            "revoked_at": None,
            "last_used_at": None,
        }
        with self._write.begin() as conn:
            conn.execute(insert(t.api_keys).values(**row))
        return {**_public(row), "key": token}

    def list_api_keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Every key's public record (never its hash), oldest first."""
        query = select(*(t.api_keys.c[name] for name in _PUBLIC)).order_by(t.api_keys.c.created_at)
        if not include_revoked:
            query = query.where(t.api_keys.c.revoked_at.is_(None))
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def get_api_key(self, key_id: str) -> dict[str, Any]:
        """One key's public record. Raises NotFoundError."""
        with self._read.connect() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.key_id == key_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"API key {key_id!r} not found; list keys with `GET /api/v1/keys` (an admin key is needed).")
        return _public(row)

    def rotate_api_key(self, key_id: str) -> dict[str, Any]:
        """Replace a key's secret (the old key stops working at once); the result's ``key`` is the new plain key."""
        token = _new_token(key_id)
        with self._write.begin() as conn:
            changed = conn.execute(
                update(t.api_keys)
                .where(and_(t.api_keys.c.key_id == key_id, t.api_keys.c.revoked_at.is_(None)))
                .values(key_hash=hash_key(token), prefix=token[:25], rotated_at=time.time())
            ).rowcount
        self._verified_keys.clear()
        if not changed:
            current = self.get_api_key(key_id)
            raise StateError(
                f"API key {key_id!r} ({current['name']}) is revoked and cannot be rotated; create a new key instead."
            )
        return {**self.get_api_key(key_id), "key": token}

    def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key for good (idempotent); returns its public record."""
        with self._write.begin() as conn:
            conn.execute(
                update(t.api_keys)
                .where(and_(t.api_keys.c.key_id == key_id, t.api_keys.c.revoked_at.is_(None)))
                .values(revoked_at=time.time())
            )
        self._verified_keys.clear()
        return self.get_api_key(key_id)

    def verify_api_key(self, token: str) -> dict[str, Any] | None:
        """The public record of the live key ``token``, or ``None`` (unknown, wrong or revoked)."""
        match = _TOKEN.match(token or "")
        with self._read.connect() as conn:
            row = (
                conn.execute(select(t.api_keys).where(t.api_keys.c.key_id == match.group(1))).mappings().first()
                if match
                else None
            )
        stored = row["key_hash"] if row is not None else "0" * 64
        if not hmac.compare_digest(stored, hash_key(token or "")) or row is None or row["revoked_at"] is not None:
            return None
        now = time.time()
        if row["last_used_at"] is None or row["last_used_at"] < now - _LAST_USED_RESOLUTION:
            with self._write.begin() as conn:
                conn.execute(update(t.api_keys).where(t.api_keys.c.key_id == row["key_id"]).values(last_used_at=now))
        record = _public(row)
        if len(self._verified_keys) >= _REMEMBERED_KEYS:
            self._verified_keys.clear()
        self._verified_keys[row["key_hash"]] = (time.monotonic() + _REMEMBERED_SECONDS, record)
        return record

    def recently_verified_key(self, token: str) -> dict[str, Any] | None:
        """The public record of ``token`` if :meth:`verify_api_key` accepted it within the last two seconds
        (no database access); ``None`` otherwise (verify it then)."""
        remembered = self._verified_keys.get(hash_key(token))
        if remembered is None or remembered[0] < time.monotonic():
            return None
        return remembered[1]

    def bootstrap_admin_key(self, name: str = "admin") -> dict[str, Any] | None:
        """Create an admin key when no live admin key exists (a new server); ``None`` otherwise."""
        with self._read.connect() as conn:
            existing = conn.execute(
                select(t.api_keys.c.key_id).where(and_(t.api_keys.c.admin.is_(True), t.api_keys.c.revoked_at.is_(None))).limit(1)
            ).first()
        return None if existing else self.create_api_key(name, kind="user", admin=True)


def _new_token(key_id: str) -> str:
    return f"ktr_{key_id}.{secrets.token_urlsafe(32)}"


def _public(row: Any) -> dict[str, Any]:
    return {name: row[name] for name in _PUBLIC}


def _check(name: str, kind: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise KitaruUsageError(
            f"key name {name!r} is not valid; use letters, digits, '_', '.', '@' or '-' (up to 128 characters)."
        )
    if kind not in KEY_KINDS:
        raise KitaruUsageError(f"key kind {kind!r} is not valid; use one of {', '.join(KEY_KINDS)}.")
