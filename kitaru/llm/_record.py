"""Make one model call (or answer it from ``KITARU_LLM_MOCK_RESPONSE``) and describe it for the record."""

from __future__ import annotations

import time
from typing import Any

from kitaru.llm._pricing import estimate_cost
from kitaru.llm._providers import Completion, complete

__all__ = ["call_and_record"]


def call_and_record(
    prompt: str | list[dict[str, Any]],
    *,
    target: dict[str, Any],
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    mock_response: str | None,
    settings: dict[str, Any],
    name: str | None = None,
    records: list[dict[str, Any]] | None = None,
) -> str:
    """Return the model's answer to ``prompt``; append a record of the call to ``records`` (when given).

    A provider error raises (:class:`~kitaru.llm.LLMProviderError`) and records nothing.
    """
    started_at = time.time()
    clock = time.perf_counter()
    if mock_response is not None:
        completion = Completion(text=mock_response, input_tokens=None, output_tokens=None, response_model=None)
    else:
        completion = complete(target, prompt, system=system, temperature=temperature, max_tokens=max_tokens, settings=settings)
    latency = time.perf_counter() - clock
    cost = None
    if mock_response is None and settings.get("llm_cost", True):
        cost = estimate_cost(target["provider"], target["name"], completion.input_tokens, completion.output_tokens)
    if records is not None:
        records.append(
            {
                "name": name,
                "prompt": prompt,
                "system": system,
                "response": completion.text,
                "requested_model": target["requested"],
                "resolved_model": target["model"],
                "response_model": completion.response_model,
                "provider": target["provider"],
                "alias": target["alias"],
                "model_source": target["source"],
                "temperature": temperature,
                "max_tokens": max_tokens,
                "started_at": started_at,
                "latency_s": latency,
                "input_tokens": completion.input_tokens,
                "output_tokens": completion.output_tokens,
                "cost_usd": cost,
                "mocked": mock_response is not None,
            }
        )
    return completion.text
