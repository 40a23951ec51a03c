"""``kitaru model register|list`` and ``kitaru secrets set|show|list|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kitaru.cli._output import Output, OutputOption, console, emit, parse_pairs, table, when
from kitaru.errors import KitaruUsageError

model_app = typer.Typer(help="Model aliases for kitaru.llm().", no_args_is_help=True)
secrets_app = typer.Typer(help="Encrypted credentials (values are never shown again).", no_args_is_help=True)


def _client() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient()


@model_app.command()
def register(
    alias: Annotated[str, typer.Argument(help="The name flows pass as model=.")],
    model: Annotated[str, typer.Option("--model", "-m", help="provider/model, e.g. openai/gpt-5-nano.")],
    secret: Annotated[str | None, typer.Option("--secret", help="A secret holding the provider's API key.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="An OpenAI-compatible endpoint to call instead.")] = None,
    default: Annotated[bool, typer.Option("--default", help="Use it when kitaru.llm() gets no model=.")] = False,
    output: OutputOption = Output.text,
) -> None:
    """Register (or replace) a model alias."""
    alias_ = _client().models.register(alias, model=model, secret=secret, base_url=base_url, default=default)
    emit(output, alias_, lambda: console().print(f"registered {alias} -> {model}" + (" (default)" if default else "")))


@model_app.command("list")
def list_models(output: OutputOption = Output.text) -> None:
    """Every model alias."""
    aliases = _client().models.list()
    rows = [(a.alias, a.model, a.secret or "-", a.base_url or "-", "yes" if a.default else "") for a in aliases]
    emit(output, aliases, lambda: table(("ALIAS", "MODEL", "SECRET", "BASE URL", "DEFAULT"), rows, title="model aliases"))


@secrets_app.command("set")
def set_(
    name: Annotated[str, typer.Argument(help="The secret's name.")],
    values: Annotated[list[str], typer.Argument(help="KEY=VALUE pairs, e.g. OPENAI_API_KEY=sk-...", show_default=False)],
    output: OutputOption = Output.text,
) -> None:
    """Create a secret or update some of its keys."""
    pairs = parse_pairs(values, "KEY=VALUE", json_values=False)
    if not pairs:
        raise KitaruUsageError("give at least one KEY=VALUE, e.g. kitaru secrets set creds OPENAI_API_KEY=sk-...")
    info = _client().secrets.set(name, **pairs)
    emit(output, info, lambda: console().print(f"stored secret {name} (keys: {', '.join(info.keys)})"))


@secrets_app.command()
def show(name: Annotated[str, typer.Argument(help="The secret's name.")], output: OutputOption = Output.text) -> None:
    """A secret's keys (never its values)."""
    info = _client().secrets.show(name)
    emit(
        output,
        info,
        lambda: table(("NAME", "KEYS", "UPDATED"), [(info.name, ", ".join(info.keys), when(info.updated_at))], title="secret"),
    )


@secrets_app.command("list")
def list_secrets(output: OutputOption = Output.text) -> None:
    """Every secret's name and keys."""
    infos = _client().secrets.list()
    rows = [(i.name, ", ".join(i.keys), when(i.updated_at)) for i in infos]
    emit(output, infos, lambda: table(("NAME", "KEYS", "UPDATED"), rows, title="secrets"))


@secrets_app.command()
def delete(name: Annotated[str, typer.Argument(help="The secret's name.")], output: OutputOption = Output.text) -> None:
    """Delete a secret."""
    _client().secrets.delete(name)
    emit(output, {"deleted": name}, lambda: console().print(f"deleted secret {name}"))
