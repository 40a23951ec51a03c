"""``kitaru.llm``: a tracked model call (SPEC §3.9).

Where it runs decides how it is recorded:

- in a flow body, the call is a durable checkpoint named ``name or "llm"`` of
  type ``llm_call`` (a Ray task; its answer is persisted like any output);
- inside a checkpoint, it runs there and is recorded on that checkpoint;
- outside a flow, it is a plain, unrecorded call.

Each record (``CheckpointCall.llm_calls``) holds the prompt, system prompt,
response, requested and resolved model, provider, alias, latency, token counts
and a cost estimate. The model SDKs (``openai``, ``anthropic``) and the price
table (``genai-prices``) are imported only when a call is made.
"""

from __future__ import annotations

from typing import Any

from kitaru._context import current_attempt, current_driver
from kitaru.errors import KitaruUsageError
from kitaru.llm._providers import LLMProviderError

__all__ = ["LLMProviderError", "llm"]

_ROLES = ("system", "user", "assistant")


def llm(
    prompt: str | list[dict[str, Any]],
    *,
    model: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
) -> str:
    """Ask a model and return its answer, recorded durably.

    Args:
        prompt: The user message, or a chat as a list of ``{"role": ..., "content": ...}`` messages
            (roles ``system``, ``user``, ``assistant``); ``system=`` is prepended to it.
        model: ``"openai/<model>"``, ``"anthropic/<model>"``, ``"ollama/<model>"``, ``"openrouter/<model>"`` or a
            registered alias. Default: the default alias, then ``KITARU_DEFAULT_MODEL``.
        system: An optional system prompt.
        temperature: Sampling temperature (the provider's default when omitted).
        max_tokens: Most tokens to generate (Anthropic needs one; it defaults to 4096 there).
        name: The checkpoint name of a flow-body call (default ``"llm"``).

    Raises:
        KitaruUsageError: bad arguments, no model, an unknown alias or provider prefix (raised before
            anything is recorded or started).
        LLMProviderError: the provider failed; inside a flow this fails the checkpoint attempt, which the
            checkpoint's ``retries`` may retry.
    """
    _check_arguments(prompt, model, system, name)
    from kitaru.llm._record import call_and_record
    from kitaru.llm._resolve import resolve_target

    options = {"system": system, "temperature": temperature, "max_tokens": max_tokens}
    attempt = current_attempt.get()
    if attempt is not None:
        settings = attempt.settings
        records = attempt.metadata.setdefault("llm_calls", [])
        return call_and_record(
            prompt,
            target=resolve_target(model, settings),
            mock_response=settings.get("llm_mock_response"),
            settings=settings,
            name=name,
            records=records,
            **options,
        )
    driver = current_driver.get()
    if driver is None:
        from kitaru.config import resolve_settings

        settings = resolve_settings().for_workers()
        return call_and_record(
            prompt,
            target=resolve_target(model, settings),
            mock_response=settings.get("llm_mock_response"),
            settings=settings,
            name=name,
            **options,
        )
    return _flow_body_call(driver, prompt, model, name, options)


def _flow_body_call(
    driver: Any, prompt: str | list[dict[str, Any]], model: str | None, name: str | None, options: dict[str, Any]
) -> str:
    """Resolve in the driver (bad input fails here, before any record), then run the ``llm_call`` checkpoint."""
    from kitaru.llm._checkpoint import llm_checkpoint
    from kitaru.llm._resolve import resolve_target

    settings = driver.worker_settings
    target = resolve_target(model, settings)
    checkpoint = llm_checkpoint(name or "llm")
    answer: str = checkpoint(prompt, model=model, target=target, mock_response=settings.get("llm_mock_response"), **options)
    return answer


def _check_arguments(prompt: Any, model: Any, system: Any, name: Any) -> None:
    if isinstance(prompt, list):
        for message in prompt:
            if not (isinstance(message, dict) and message.get("role") in _ROLES and isinstance(message.get("content"), str)):
                raise KitaruUsageError(
                    "kitaru.llm() takes a chat as a list of {'role': 'system'|'user'|'assistant', 'content': str} "
                    f"messages; {message!r} is not one."
                )
        if not prompt:
            raise KitaruUsageError("kitaru.llm() was given an empty list of messages; give at least one.")
    elif not isinstance(prompt, str):
        raise KitaruUsageError(
            f"kitaru.llm() takes the prompt as a string or a list of chat messages, not {type(prompt).__name__}."
        )
    for label, value in (("model", model), ("system", system), ("name", name)):
        if value is not None and not isinstance(value, str):
            raise KitaruUsageError(f"kitaru.llm() takes {label}= as a string, not {type(value).__name__}.")
    if name is not None and not name.strip():
        raise KitaruUsageError("kitaru.llm() takes name= as a non-empty string (it names the checkpoint), or no name.")
