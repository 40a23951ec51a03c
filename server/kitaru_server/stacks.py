"""Stacks: named bundles of compute backend, storage and container registry (part of the service layer).

A stack is shared by the team through the server; a client picks one with
``kitaru stack use``. The ``default`` stack is built in (local backend, storage
under the client's ``KITARU_HOME``), so it is never stored and cannot be
created or deleted.
"""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import delete, insert, select, update

from kitaru.errors import KitaruUsageError
from kitaru_server import tables as t
from kitaru_server.errors import ConflictError, NotFoundError

__all__ = ["AVAILABLE_BACKENDS", "DEFAULT_STACK", "PLANNED_BACKENDS", "StackOperations", "check_backend"]

DEFAULT_STACK = "default"
AVAILABLE_BACKENDS = ("local", "ray", "kuberay", "vertex", "sagemaker")
PLANNED_BACKENDS: tuple[str, ...] = ()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class StackOperations:
    """Mixed into :class:`~kitaru_server.service.KitaruService` (uses its engines)."""

    _write: Any
    _read: Any

    def create_stack(
        self,
        name: str,
        *,
        backend: str = "local",
        storage_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
        container_registry: str | None = None,
        backend_options: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Store the stack ``name``.

        Raises:
            KitaruUsageError: a bad name, the reserved name ``default`` or a backend that is not available.
            ConflictError: the stack exists and ``replace`` is false.
        """
        check_stack_name(name)
        if name == DEFAULT_STACK:
            raise KitaruUsageError(
                "the 'default' stack is built in and cannot be created or changed; create a stack with another name."
            )
        check_backend(backend)
        for label, value in (("storage_options", storage_options), ("backend_options", backend_options)):
            if value is not None and not isinstance(value, dict):
                raise KitaruUsageError(f"{label} of stack {name!r} must be a JSON object, not {type(value).__name__}.")
        now = time.time()
        fields = {
            "backend": backend,
            "storage_url": storage_url,
            "storage_options": storage_options or {},
            "container_registry": container_registry,
            "backend_options": backend_options or {},
            "updated_at": now,
        }
        with self._write.begin() as conn:
            exists = conn.execute(select(t.stacks.c.name).where(t.stacks.c.name == name)).first() is not None
            if exists and not replace:
                raise ConflictError(
                    f"stack {name!r} already exists; delete it first (`kitaru stack delete {name}`) or choose another name."
                )
            if exists:
                conn.execute(update(t.stacks).where(t.stacks.c.name == name).values(**fields))
            else:
                conn.execute(insert(t.stacks).values(name=name, created_at=now, **fields))
        return self.get_stack(name)

    def get_stack(self, name: str) -> dict[str, Any]:
        """One stored stack. Raises NotFoundError naming ``kitaru stack list``."""
        with self._read.connect() as conn:
            row = conn.execute(select(t.stacks).where(t.stacks.c.name == name)).mappings().first()
        if row is None:
            raise stack_not_found(name)
        return dict(row)

    def list_stacks(self) -> list[dict[str, Any]]:
        """Every stored stack, by name (the built-in ``default`` is not stored)."""
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(select(t.stacks).order_by(t.stacks.c.name)).mappings()]

    def stack_credentials(self, name: str) -> dict[str, Any]:
        """Short-lived credentials scoped to stack ``name``'s storage (see :mod:`kitaru_server.credentials`)."""
        from kitaru_server.credentials import broker_credentials

        return broker_credentials(self.get_stack(name), self.secret_values)  # type: ignore[attr-defined]

    def delete_stack(self, name: str) -> None:
        """Delete a stored stack. Raises NotFoundError (and KitaruUsageError for ``default``)."""
        if name == DEFAULT_STACK:
            raise KitaruUsageError("the 'default' stack is built in and cannot be deleted.")
        with self._write.begin() as conn:
            if conn.execute(delete(t.stacks).where(t.stacks.c.name == name)).rowcount == 0:
                raise stack_not_found(name)


def check_stack_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise KitaruUsageError(f"stack name {name!r} is not valid; use letters, digits, '_', '.' or '-' (up to 128 characters).")


def check_backend(backend: str) -> None:
    """Raise a :class:`KitaruUsageError` naming the available backends unless ``backend`` is one."""
    if backend in AVAILABLE_BACKENDS:
        return
    available = ", ".join(AVAILABLE_BACKENDS)
    if backend in PLANNED_BACKENDS:
        raise KitaruUsageError(f"backend {backend!r} is not available yet; the available backends are: {available}.")
    raise KitaruUsageError(f"unknown backend {backend!r}; the available backends are: {available}.")


def stack_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"stack {name!r} not found; list the stacks with `kitaru stack list` or create it with `kitaru stack create {name}`."
    )
