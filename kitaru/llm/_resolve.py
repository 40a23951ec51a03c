"""Which model a call uses: parse ``provider/model`` strings and resolve aliases.

Order (SPEC §3.9): the ``model=`` argument (a ``provider/model`` string or a
registered alias) → the default alias → ``KITARU_DEFAULT_MODEL`` (also a
string or an alias). The result is a *target*: a JSON-ready dict that travels
to the Ray task as a checkpoint input (so it is part of the cache key).
"""

from __future__ import annotations

from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = ["ACCEPTED_FORMS", "PROVIDERS", "parse_model", "resolve_target"]

PROVIDERS = ("openai", "anthropic", "ollama", "openrouter")
COMPATIBLE = "openai_compatible"
ACCEPTED_FORMS = (
    "'openai/<model>', 'anthropic/<model>', 'ollama/<model>', 'openrouter/<model>', or a registered alias "
    "(for any OpenAI-compatible endpoint, register one with a base_url: "
    "KitaruClient().models.register('local', model='my-model', base_url='http://host:8000/v1'))"
)


def parse_model(model: str, *, base_url: str | None = None) -> tuple[str, str]:
    """``(provider, model name)`` of ``model``; with a ``base_url``, an unprefixed name is an OpenAI-compatible model.

    Raises:
        KitaruUsageError: the provider prefix is unknown (the message lists the accepted forms).
    """
    if not isinstance(model, str) or not model.strip():
        raise KitaruUsageError(f"model must be a non-empty string such as 'openai/gpt-4o-mini', not {model!r}.")
    prefix, slash, name = model.partition("/")
    if slash and name and prefix in PROVIDERS:
        return prefix, name
    if base_url:
        return COMPATIBLE, model
    if not slash:
        raise KitaruUsageError(
            f"model {model!r} is neither a registered alias nor a 'provider/model' string; use {ACCEPTED_FORMS}."
        )
    raise KitaruUsageError(f"model {model!r} has an unknown provider prefix {prefix!r}; use {ACCEPTED_FORMS}.")


def resolve_target(requested: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The target of a call that asked for ``requested`` under the run's ``settings``.

    Raises:
        KitaruUsageError: no model can be found, an alias is unknown, or a provider prefix is unknown.
    """
    if requested is not None:
        return _from_choice(requested, requested, "argument", settings)
    alias = _service(settings).default_model()
    if alias is not None:
        return _from_alias(alias, None, "default alias")
    default = settings.get("default_model")
    if default:
        return _from_choice(default, None, "KITARU_DEFAULT_MODEL", settings)
    if settings.get("llm_mock_response") is not None:
        return _target(None, None, None, None, requested=None, source="mock")
    raise KitaruUsageError(
        "kitaru.llm() has no model: pass model='openai/gpt-4o-mini' (or an alias), register a default alias with "
        "KitaruClient().models.register('fast', model='openai/gpt-4o-mini', default=True), or set KITARU_DEFAULT_MODEL."
    )


def _from_choice(choice: str, requested: str | None, source: str, settings: dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str) and choice and "/" not in choice:
        alias = _service(settings).get_model(choice)
        if alias is not None:
            return _from_alias(alias, requested, source)
    provider, name = parse_model(choice)
    return _target(provider, name, None, None, requested=requested, source=source)


def _from_alias(alias: dict[str, Any], requested: str | None, source: str) -> dict[str, Any]:
    provider, name = parse_model(alias["model"], base_url=alias["base_url"])
    return _target(provider, name, alias["secret"], alias["base_url"], requested=requested, source=source, alias=alias["alias"])


def _target(
    provider: str | None,
    name: str | None,
    secret: str | None,
    base_url: str | None,
    *,
    requested: str | None,
    source: str,
    alias: str | None = None,
) -> dict[str, Any]:
    return {
        "requested": requested,
        "source": source,
        "alias": alias,
        "provider": provider,
        "name": name,
        "model": f"{provider}/{name}" if provider else None,
        "secret": secret,
        "base_url": base_url,
    }


def _service(settings: dict[str, Any]) -> Any:
    from kitaru._service import connect_service

    return connect_service(settings["service_url"], settings.get("api_key"))
