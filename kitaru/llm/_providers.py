"""Model calls through the official SDKs: ``openai`` (OpenAI, Ollama, OpenRouter, any
OpenAI-compatible endpoint) and ``anthropic``.

The SDKs' own retries are off (``max_retries=0``): Kitaru owns retries, so a
provider error fails the checkpoint attempt and the checkpoint's ``retries``
decide what happens next.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from kitaru.errors import KitaruFeatureNotAvailableError, KitaruRuntimeError, KitaruUsageError

__all__ = ["Completion", "LLMProviderError", "complete"]

ANTHROPIC_DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; this covers ordinary answers
_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "ollama": "OLLAMA_API_KEY",
    "openai_compatible": "OPENAI_API_KEY",
}
_DEFAULT_BASE_URL = {"ollama": "http://localhost:11434/v1", "openrouter": "https://openrouter.ai/api/v1"}
_KEYLESS = frozenset({"ollama", "openai_compatible"})  # local servers often need no key; the SDK still wants one


class LLMProviderError(KitaruRuntimeError):
    """The model provider answered with an error or could not be reached.

    Fields: ``provider``, ``model``, ``status_code`` (when the provider answered).
    """


@dataclasses.dataclass
class Completion:
    """A provider's answer: text, token usage and the model it reports."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    response_model: str | None


def complete(
    target: dict[str, Any],
    prompt: str | list[dict[str, Any]],
    *,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    settings: dict[str, Any],
) -> Completion:
    """Call the target's provider once (``settings``: the run's worker settings, to reach the alias's secret).

    Raises:
        LLMProviderError: the provider failed (HTTP error, connection error, timeout).
    """
    api_key = _api_key(target, settings)
    if target["provider"] == "anthropic":
        return _anthropic(target, api_key, prompt, system, temperature, max_tokens)
    return _openai(target, api_key, prompt, system, temperature, max_tokens)


def chat_messages(prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation to send: a string is one user message; a list of ``{"role", "content"}`` is taken as is."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def _openai(
    target: dict[str, Any],
    api_key: str | None,
    prompt: str | list[dict[str, Any]],
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
) -> Completion:
    openai = _import("openai")
    provider = target["provider"]
    base_url = target["base_url"] or _DEFAULT_BASE_URL.get(provider)  # None: the SDK reads OPENAI_BASE_URL
    messages = ([{"role": "system", "content": system}] if system else []) + chat_messages(prompt)
    params: dict[str, Any] = {"model": target["name"], "messages": messages}
    if temperature is not None:
        params["temperature"] = temperature
    if max_tokens is not None:
        # OpenAI's own API replaced max_tokens (refused by its reasoning models); other servers know only max_tokens.
        params["max_completion_tokens" if provider == "openai" else "max_tokens"] = max_tokens
    try:
        with openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0) as client:
            response = client.chat.completions.create(**params)
    except openai.OpenAIError as exc:
        raise _provider_error(target, exc) from exc
    usage = response.usage
    return Completion(
        text=response.choices[0].message.content or "",
        input_tokens=getattr(usage, "prompt_tokens", None),
        output_tokens=getattr(usage, "completion_tokens", None),
        response_model=response.model,
    )


def _anthropic(
    target: dict[str, Any],
    api_key: str | None,
    prompt: str | list[dict[str, Any]],
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
) -> Completion:
    anthropic = _import("anthropic")
    messages = chat_messages(prompt)
    # Anthropic takes system prompts beside the conversation, not in it.
    systems = [system] if system else []
    systems += [str(m["content"]) for m in messages if m["role"] == "system"]
    params: dict[str, Any] = {
        "model": target["name"],
        "max_tokens": max_tokens or ANTHROPIC_DEFAULT_MAX_TOKENS,
        "messages": [m for m in messages if m["role"] != "system"],
    }
    if systems:
        params["system"] = "\n\n".join(systems)
    if temperature is not None:
        # Recent anthropic SDKs dropped the sampling arguments from create(); the wire field still carries it.
        params["extra_body"] = {"temperature": temperature}
    try:
        # base_url None: the SDK reads ANTHROPIC_BASE_URL
        with anthropic.Anthropic(api_key=api_key, base_url=target["base_url"], max_retries=0) as client:
            response = client.messages.create(**params)
    except anthropic.AnthropicError as exc:
        raise _provider_error(target, exc) from exc
    usage = response.usage
    return Completion(
        text="".join(block.text for block in response.content if getattr(block, "type", None) == "text"),
        input_tokens=getattr(usage, "input_tokens", None),
        output_tokens=getattr(usage, "output_tokens", None),
        response_model=response.model,
    )


def _provider_error(target: dict[str, Any], exc: BaseException) -> LLMProviderError:
    return LLMProviderError(
        f"{target['provider']} call to model {target['name']!r} failed: {type(exc).__name__}: {exc}. This attempt failed; give "
        "the checkpoint retries= to retry it, or check the provider's status, the model name and the credentials.",
        provider=target["provider"],
        model=target["model"],
        status_code=getattr(exc, "status_code", None),
    )


def _api_key(target: dict[str, Any], settings: dict[str, Any]) -> str | None:
    """Environment first (where the call runs), then the alias's secret."""
    provider = target["provider"]
    env_name = _KEY_ENV[provider]
    if os.environ.get(env_name):
        return os.environ[env_name]
    if target["secret"]:
        from kitaru._service import connect_service

        values = connect_service(settings["service_url"], settings.get("api_key")).secret_values(target["secret"])
        for key in (env_name, "api_key", "API_KEY"):
            if values.get(key):
                return values[key]
        raise KitaruUsageError(
            f"secret {target['secret']!r} (of alias {target['alias']!r}) has no {env_name}; add it with "
            f"`kitaru secrets set {target['secret']} {env_name}=...`."
        )
    if provider in _KEYLESS:
        return "unused"
    raise KitaruUsageError(
        f"no API key for {provider}: set {env_name} where the flow runs, or store it in a secret "
        f"(`kitaru secrets set creds {env_name}=...`) and register an alias that uses it "
        f"(`kitaru model register fast --model {target['model']} --secret creds`)."
    )


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise KitaruFeatureNotAvailableError(
            f"kitaru.llm needs the {name} SDK for this model; install it with pip install 'kitaru[llm]'."
        ) from None
