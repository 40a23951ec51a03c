"""The inline prompt: on a terminal, a local run asks for a wait's input right there.

The answer goes through the same validated path as any client's input, so a
bad value is refused with the schema's message and asked again; an answer
given elsewhere first (CLI, UI) simply wins.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from kitaru.errors import KitaruConflictError, KitaruWaitValidationError


def prompt_in_background(
    exec_id: str, wait_name: str, question: str | None, schema: dict[str, Any] | None, *, service_url: str, api_key: str | None
) -> None:
    """Ask on the terminal in a daemon thread (the driver keeps polling meanwhile)."""
    thread = threading.Thread(
        target=_ask,
        args=(exec_id, wait_name, question, schema, service_url, api_key),
        name=f"kitaru-prompt-{wait_name}",
        daemon=True,
    )
    thread.start()


def _ask(
    exec_id: str, wait_name: str, question: str | None, schema: dict[str, Any] | None, service_url: str, api_key: str | None
) -> None:
    from kitaru._service import connect_service

    service = connect_service(service_url, api_key)
    expected = f" (JSON matching {json.dumps(schema)})" if schema else " (any value continues)"
    while True:
        print(f"\n[kitaru] {question or f'Input for wait {wait_name!r}'}{expected}: ", end="", file=sys.stderr, flush=True)
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            return
        if not line:
            return
        try:
            service.answer_wait(exec_id, wait_name, parse_value(line.strip(), schema))  # validated against its schema
            return
        except KitaruWaitValidationError as error:
            print(f"[kitaru] {error}", file=sys.stderr, flush=True)
        except KitaruConflictError:
            return  # answered elsewhere first


def parse_value(text: str, schema: dict[str, Any] | None) -> Any:
    """Parse input as JSON; a plain string when that fails and the schema is a string (SPEC §3.7)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if schema is None or schema.get("type") == "string":
            return text
        raise KitaruWaitValidationError(f'{text!r} is not valid JSON; type a JSON value such as 42, true or "text".') from None
