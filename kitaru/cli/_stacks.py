"""``kitaru stack list|show|current|use|create|delete``: the team's stacks (stored on the server)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from kitaru.cli._output import Output, OutputOption, console, emit, mask_secrets, parse_pairs, table, to_jsonable

stack_app = typer.Typer(help="Stacks: named bundles of compute backend, storage and container registry.", no_args_is_help=True)


def _stacks() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient().stacks


def _active() -> str:
    from kitaru.config import resolve_settings

    return resolve_settings().stack or "default"


@stack_app.command("list")
def list_(output: OutputOption = Output.text) -> None:
    """Every stack; the active one is marked with *."""
    stacks = _stacks().list()
    active = _active()
    rows = [
        ("*" if s.name == active else "", s.name, s.backend, s.storage_url or "-", s.container_registry or "-") for s in stacks
    ]
    emit(
        output, [_public(s) for s in stacks], lambda: table(("", "NAME", "BACKEND", "STORAGE", "REGISTRY"), rows, title="stacks")
    )


@stack_app.command()
def show(
    name: Annotated[str | None, typer.Argument(help="The stack (default: the active one).")] = None,
    output: OutputOption = Output.text,
) -> None:
    """One stack's settings (values of secret-looking storage options are masked)."""
    stack = _stacks().get(name) if name else _stacks().current()
    emit(output, _public(stack), lambda: _print_stack(stack))


@stack_app.command()
def current(output: OutputOption = Output.text) -> None:
    """The active stack (KITARU_STACK, configure(stack=), the project or user config, else default)."""
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    stack = _stacks().current()
    source = settings.sources.get("stack", "default")
    emit(output, {**_public(stack), "source": source}, lambda: console().print(f"{stack.name} [dim](from {source})[/dim]"))


@stack_app.command()
def use(
    name: Annotated[str, typer.Argument(help="The stack to make active.")],
    user: Annotated[
        bool, typer.Option("--user", help="Record it in the user config, not the project's .kitaru/config.yaml.")
    ] = False,
    output: OutputOption = Output.text,
) -> None:
    """Make a stack the active one (recorded in the project config, or the user config outside a project)."""
    path = _stacks().use(name, user=user)
    emit(output, {"stack": name, "config": str(path)}, lambda: console().print(f"using stack {name} (recorded in {path})"))


@stack_app.command()
def create(
    name: Annotated[str, typer.Argument(help="The new stack's name.")],
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            "-b",
            help="The compute backend: local, or ray (options: address=http://HOST:8265, runtime_env=JSON, ...).",
        ),
    ] = "local",
    storage_url: Annotated[
        str | None, typer.Option("--storage-url", "-s", help="fsspec URL or directory for checkpoint outputs.")
    ] = None,
    storage_option: Annotated[
        list[str] | None, typer.Option("--storage-option", help="KEY=VALUE (JSON or text) for fsspec; repeatable.")
    ] = None,
    registry: Annotated[str | None, typer.Option("--registry", "-r", help="The container registry of remote backends.")] = None,
    backend_option: Annotated[
        list[str] | None, typer.Option("--backend-option", help="KEY=VALUE (JSON or text); repeatable.")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing stack of that name.")] = False,
    activate: Annotated[bool, typer.Option("--use", help="Make it the active stack too.")] = False,
    output: OutputOption = Output.text,
) -> None:
    """Create a stack on the server (shared by everyone using it)."""
    stacks = _stacks()
    stack = stacks.create(
        name,
        backend=backend,
        storage_url=storage_url,
        storage_options=parse_pairs(storage_option, "--storage-option", json_values=True),
        container_registry=registry,
        backend_options=parse_pairs(backend_option, "--backend-option", json_values=True),
        replace=replace,
    )
    path = stacks.use(name) if activate else None

    def text() -> None:
        console().print(f"created stack {name} ({stack.backend}, storage {stack.storage_url or 'default'})")
        if path is not None:
            console().print(f"using stack {name} (recorded in {path})")

    emit(output, _public(stack), text)


@stack_app.command()
def delete(name: Annotated[str, typer.Argument(help="The stack to delete.")], output: OutputOption = Output.text) -> None:
    """Delete a stack from the server."""
    _stacks().delete(name)
    active = _active() == name

    def text() -> None:
        console().print(f"deleted stack {name}")
        if active:
            console().print("[yellow]it was the active stack; choose another with `kitaru stack use NAME`[/yellow]")

    emit(output, {"deleted": name, "was_active": active}, text)


def _public(stack: Any) -> dict[str, Any]:
    data = to_jsonable(stack)
    data["storage_options"] = mask_secrets(data["storage_options"])
    return data


def _print_stack(stack: Any) -> None:
    data = _public(stack)
    rows = [
        (key, json.dumps(value) if isinstance(value, dict) else ("-" if value is None else str(value)))
        for key, value in data.items()
    ]
    table(("FIELD", "VALUE"), rows, title=f"stack {stack.name}")
