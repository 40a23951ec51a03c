"""What the server accepts from a client about an execution (part of the service layer).

Whoever continues an execution (a resume, a retry, a replay) loads its flow and
its stored values from storage and runs them: a record is only as safe as the
storage it points at. So the server admits an execution only when

- its storage is its stack's storage, as the server has it (a stored stack's
  ``storage_url`` and ``storage_options``; for the ``default`` stack, the
  server's own storage setting), never a URL or options the client chose;
- every stored object it names (the flow's blob, its inputs, its result, each
  call's output and artifacts) is a content-addressed object of that storage
  (``<storage>/objects/<digest[:2]>/<digest>``), never inline bytes (``data:``)
  or a path elsewhere;

and a principal may continue an execution another principal created only with
the permission to (admins and service accounts have it; a user key when an
admin grants ``continue_others``). Every refusal is a :class:`PermissionDeniedError`
(403) or a :class:`~kitaru.errors.KitaruUsageError` (422) naming the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from kitaru.errors import KitaruUsageError
from kitaru_server.errors import PermissionDeniedError

__all__ = [
    "DEFAULT_STACK",
    "check_new_execution",
    "check_operations",
    "exec_ids_of",
    "check_result",
    "check_may_continue",
    "may_continue",
    "principal_of",
]

DEFAULT_STACK = "default"
_DIGEST = re.compile(r"^[0-9a-f]{32,128}$")
# fsspec protocols that name the same store (a URL written either way is the same place)
_SCHEME_ALIASES = {"s3a": "s3", "gcs": "gs", "abfss": "abfs", "az": "abfs", "local": "file"}


def principal_of(caller: dict[str, Any]) -> dict[str, Any] | None:
    """What an execution records about the key that acted on it: its id and name (``None`` for an anonymous caller)."""
    if caller.get("key_id") is None:
        return None
    return {"key_id": caller["key_id"], "name": caller["name"]}


def may_continue(caller: dict[str, Any], execution: dict[str, Any]) -> bool:
    """Whether ``caller`` may resume, retry or replay ``execution`` (its own, or any with the permission)."""
    if caller.get("admin") or caller.get("kind") == "service_account" or caller.get("continue_others"):
        return True
    creator = execution.get("created_by") or {}
    return caller.get("key_id") is not None and creator.get("key_id") == caller["key_id"]


def check_may_continue(caller: dict[str, Any], execution: dict[str, Any], action: str) -> None:
    """Raise :class:`PermissionDeniedError` unless ``caller`` may ``action`` (resume, retry, replay) ``execution``."""
    if may_continue(caller, execution):
        return
    creator = (execution.get("created_by") or {}).get("name") or "an embedded client"
    raise PermissionDeniedError(
        f"key {caller.get('name')!r} may not {action} execution {execution['exec_id']!r}, which {creator!r} created: "
        "continuing another principal's execution needs an admin or service-account key, or a key granted "
        "continue_others by an admin.",
        exec_id=execution["exec_id"],
    )


def check_new_execution(
    record: dict[str, Any], *, stack: dict[str, Any] | None, default_storage: tuple[str | None, dict[str, Any]]
) -> None:
    """Refuse a new execution whose storage is not its stack's, or whose stored objects lie outside that storage.

    Args:
        record: The execution as the client sent it.
        stack: The stored stack it names (``None`` for the ``default`` stack).
        default_storage: The server's storage URL and options for the ``default`` stack.

    Raises:
        KitaruUsageError: the rule that refuses it, with what the server expected.
    """
    settings = record.get("settings") or {}
    name = record.get("stack") or DEFAULT_STACK
    if stack is None or not stack.get("storage_url"):
        url, options = default_storage
        where = "this server's storage for the 'default' stack" if stack is None else f"the storage of stack {name!r}"
    else:
        url, options = stack["storage_url"], stack.get("storage_options") or {}
        where = f"the storage of stack {name!r}"
    if not url:
        raise KitaruUsageError(
            f"this server has no storage for stack {name!r}; an admin sets it (stack storage_url, or "
            "`kitaru server start --storage-url`), or run on a stack that has one."
        )
    sent = settings.get("storage_url")
    if not isinstance(sent, str) or _place(sent) != _place(url):
        raise KitaruUsageError(
            f"an execution's storage is its stack's storage: {where} is {url!r}, but the execution names {sent!r}; "
            "do not set a storage URL of your own (KITARU_STORAGE_URL, configure(storage_url=)) against a server: "
            "run on a stack (`kitaru stack use NAME`, .run(stack=...)) whose storage is the one you mean."
        )
    if (settings.get("storage_options") or {}) != options:
        raise KitaruUsageError(
            f"an execution's storage options are its stack's: the execution's storage_options differ from {where}'s; "
            "do not set storage_options when running against this server (an admin sets them on the stack)."
        )
    inputs = record.get("inputs") or {}
    for label, meta in (("flow_blob", record.get("flow_blob")), ("inputs.object", inputs.get("object"))):
        if meta is not None:
            check_stored_object(meta, url, label)
    if "object" in inputs and inputs["object"] is None:
        raise KitaruUsageError("inputs.object must be a stored object of the execution's storage.")


def check_result(meta: dict[str, Any] | None, storage_url: str | None, exec_id: str) -> None:
    """Refuse a result that is not an object of the execution's storage."""
    if meta is not None:
        check_stored_object(meta, storage_url, f"the result of execution {exec_id!r}")


def check_operations(operations: Sequence[dict[str, Any]], facts: dict[str, dict[str, Any]]) -> None:
    """Refuse a batch naming stored objects outside the storage of the execution each operation is about.

    Args:
        operations: The batch, as the service takes it.
        facts: ``{exec_id: {"storage_url": ...}}`` of the executions (see ``KitaruService.run_facts``); calls of an
            unknown execution are left to the database, which refuses the whole batch.
    """
    for op in operations:
        if op.get("op") not in ("call_started", "attempt_finished") or op["exec_id"] not in facts:
            continue
        for label, meta in _objects_of(op):
            check_stored_object(meta, facts[op["exec_id"]]["storage_url"], f"{label} of call {op.get('invocation_id')!r}")


def exec_ids_of(operations: Sequence[dict[str, Any]]) -> list[str]:
    """Every execution a batch writes to (its operations' and its log and event entries')."""
    found = {op["exec_id"] for op in operations if "exec_id" in op}
    found |= {entry["exec_id"] for op in operations for entry in op.get("entries") or ()}
    return sorted(found)


def check_stored_object(meta: dict[str, Any], storage_url: str | None, label: str) -> None:
    """Refuse ``meta`` unless its URI is the content address of its digest in ``storage_url``."""
    digest = meta.get("digest") or meta.get("sha256")
    uri = meta.get("uri")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise KitaruUsageError(f"{label}: the digest must be lowercase hex (a content address), not {digest!r}.")
    expected = f"{(storage_url or '').rstrip('/')}/objects/{digest[:2]}/{digest}"
    if not storage_url or not isinstance(uri, str) or _place(uri) != _place(expected):
        raise KitaruUsageError(
            f"{label} must be an object of the execution's storage ({expected!r}), not {str(uri)[:200]!r}: "
            "values are stored objects of the stack's storage, never inline data or paths elsewhere."
        )


def _objects_of(op: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if op.get("output") is not None:
        yield "the output", op["output"]
    for artifact in op.get("artifacts") or ():
        yield f"artifact {artifact.get('name')!r}", artifact["meta"]


def _place(url: str) -> tuple[str, str]:
    """A storage URL as (scheme, path): the same place however it is written (``file:///a`` and ``file://a/``)."""
    scheme, separator, path = url.partition("://")
    if not separator:
        scheme, path = "file", url
    scheme = scheme.lower()
    return _SCHEME_ALIASES.get(scheme, scheme), "/".join(part for part in path.split("/") if part)
