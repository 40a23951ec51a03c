"""``KitaruClient().models`` and ``.secrets``: model aliases and provider credentials.

Secret values go in and are never given back: ``show`` and ``list`` return
names and keys only.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitaru.client import KitaruClient

__all__ = ["ModelAlias", "SecretInfo"]


@dataclasses.dataclass(frozen=True)
class ModelAlias:
    """A registered model alias: ``kitaru.llm(model=alias)`` calls ``model``."""

    alias: str
    model: str
    secret: str | None
    base_url: str | None
    default: bool
    created_at: datetime.datetime

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> ModelAlias:
        return cls(row["alias"], row["model"], row["secret"], row["base_url"], bool(row["is_default"]), _time(row["created_at"]))


@dataclasses.dataclass(frozen=True)
class SecretInfo:
    """A stored secret: its name and keys (its values are never returned)."""

    name: str
    keys: list[str]
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> SecretInfo:
        return cls(row["name"], list(row["keys"]), _time(row["created_at"]), _time(row["updated_at"]))


class Models:
    """Model aliases (``kitaru model register|list``)."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def register(
        self, alias: str, *, model: str, secret: str | None = None, base_url: str | None = None, default: bool = False
    ) -> ModelAlias:
        """Register (or replace) ``alias`` for ``model``.

        Args:
            alias: The name flows pass as ``model=`` (no ``/``).
            model: ``provider/model`` (openai, anthropic, ollama, openrouter); with ``base_url``, any model name of an
                OpenAI-compatible endpoint.
            secret: A secret holding the provider's API key (used when the environment has none).
            base_url: The endpoint to call instead of the provider's default.
            default: Use this alias when ``kitaru.llm()`` gets no ``model=``.
        """
        from kitaru.llm._resolve import parse_model

        parse_model(model, base_url=base_url)  # an unknown provider fails here, not in a flow
        row = self._client.service.register_model(alias, model, secret=secret, base_url=base_url, default=default)
        return ModelAlias.from_record(row)

    def list(self) -> list[ModelAlias]:
        """Every alias, by name."""
        return [ModelAlias.from_record(row) for row in self._client.service.list_models()]

    def delete(self, alias: str) -> None:
        """Remove an alias. Raises :class:`~kitaru.KitaruNotFoundError`."""
        self._client.service.delete_model(alias)


class Secrets:
    """Encrypted credentials (``kitaru secrets set|show|list|delete``)."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def set(self, name: str, **values: str) -> SecretInfo:
        """Create the secret ``name`` or update the given keys, e.g. ``set("creds", OPENAI_API_KEY="sk-...")``."""
        return SecretInfo.from_record(self._client.service.set_secret(name, values))

    def show(self, name: str) -> SecretInfo:
        """The secret's keys (never its values). Raises :class:`~kitaru.KitaruNotFoundError`."""
        return SecretInfo.from_record(self._client.service.get_secret(name))

    def list(self) -> list[SecretInfo]:
        """Every secret's name and keys."""
        return [SecretInfo.from_record(row) for row in self._client.service.list_secrets()]

    def delete(self, name: str) -> None:
        """Delete a secret. Raises :class:`~kitaru.KitaruNotFoundError`."""
        self._client.service.delete_secret(name)


def _time(value: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
