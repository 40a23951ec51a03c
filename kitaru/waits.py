"""``wait()``: durable input from a human (or another program) inside a flow body."""

from __future__ import annotations

from typing import Any

from kitaru._context import require_flow_body
from kitaru.contracts.lifecycle import validate_wait_input as validate_input
from kitaru.errors import KitaruWaitValidationError

__all__ = ["json_schema_of", "validate_input", "wait"]

DEFAULT_TIMEOUT = 600.0


def wait(
    *,
    schema: Any = None,
    name: str | None = None,
    question: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Wait for input and return it, validated against ``schema``.

    The wait is recorded (the execution shows ``waiting``) and the driver polls
    for input for ``timeout`` seconds; after that it suspends, releasing its
    Ray resources, and input given later resumes the execution. Input already
    recorded (on resume or replay) is returned at once.

    Args:
        schema: ``bool``, ``int``, ``str``, a pydantic model class, or ``None`` (a gate:
            any input continues).
        name: The wait's name (default ``"wait"``, numbered like checkpoints).
        question: Shown to whoever answers.
        timeout: Seconds to poll before suspending (``None``: never suspend).
        metadata: Free-form data stored with the wait.

    Raises:
        KitaruWaitAbortedError: the wait was aborted (uncaught, the execution ends cancelled).
    """
    driver = require_flow_body("kitaru.wait()")
    value = driver.wait_for_input(
        name=name or "wait", schema=json_schema_of(schema), question=question, timeout=timeout, metadata=metadata or {}
    )
    return coerce(schema, value)


def json_schema_of(schema: Any) -> dict[str, Any] | None:
    """The JSON Schema stored with a wait (``None`` for a gate)."""
    if schema is None:
        return None
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(schema).json_schema()
    except Exception as exc:  # noqa: BLE001 - any failure means an unsupported schema
        raise KitaruWaitValidationError(
            f"wait schema {schema!r} is not supported ({exc}); use bool, int, str, a pydantic model class or None."
        ) from None


def coerce(schema: Any, value: Any) -> Any:
    """Turn validated JSON input into the schema's Python type (a pydantic model instance for models)."""
    if schema is None or schema in (bool, int, str):
        return value
    from pydantic import TypeAdapter

    return TypeAdapter(schema).validate_python(value)
