"""Stacks as the SDK sees them: the built-in ``default`` stack, and applying a stack to a run's settings.

A stack (SPEC §7) is a named bundle stored on the server: compute backend,
storage URL and options, container registry, backend options. A run on a
stack stores its checkpoint outputs in the stack's storage, unless a storage
URL was set explicitly (``KITARU_STORAGE_URL`` or ``configure(storage_url=)``),
which wins.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from kitaru.config import Settings

__all__ = ["DEFAULT_STACK", "Stack", "apply_stack", "default_stack"]

DEFAULT_STACK = "default"
_EXPLICIT_SOURCES = ("environment", "configure()")


@dataclasses.dataclass(frozen=True)
class Stack:
    """A named bundle of compute backend, storage and container registry."""

    name: str
    backend: str
    storage_url: str | None
    storage_options: dict[str, Any]
    container_registry: str | None
    backend_options: dict[str, Any]
    builtin: bool = False
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> Stack:
        return cls(
            name=row["name"],
            backend=row["backend"],
            storage_url=row["storage_url"],
            storage_options=dict(row["storage_options"] or {}),
            container_registry=row["container_registry"],
            backend_options=dict(row["backend_options"] or {}),
            created_at=_time(row.get("created_at")),
            updated_at=_time(row.get("updated_at")),
        )


def default_stack(settings: Settings) -> Stack:
    """The built-in stack: the local backend and the storage of the current configuration."""
    return Stack(DEFAULT_STACK, "local", settings.storage_url, dict(settings.storage_options), None, {}, builtin=True)


def apply_stack(settings: Settings, service: Any, name: str | None) -> Settings:
    """``settings`` with the storage of stack ``name`` (``None`` or ``default``: unchanged).

    Raises:
        KitaruNotFoundError: the stack does not exist (the message names ``kitaru stack list``).
    """
    if name is None or name == DEFAULT_STACK:
        return settings
    stack = Stack.from_record(service.get_stack(name))
    sources = dict(settings.sources)
    changes: dict[str, Any] = {"stack": name}
    sources["stack"] = sources.get("stack", "run argument") if settings.stack == name else "run argument"
    explicit = sources.get("storage_url", "").startswith(_EXPLICIT_SOURCES)
    if stack.storage_url and not explicit:
        changes["storage_url"] = stack.storage_url
        changes["storage_options"] = stack.storage_options
        if stack.backend_options.get("credentials"):  # the server brokers them; each process asks for its own
            from kitaru.contracts.records import BROKER_OPTION

            changes["storage_options"] = {**stack.storage_options, BROKER_OPTION: name}
        sources["storage_url"] = sources["storage_options"] = f"stack {name!r}"
    return dataclasses.replace(settings, **changes, sources=sources)


def _time(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, tz=dt.UTC)
