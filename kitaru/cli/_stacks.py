"""``kitaru stack list|show|current|use|create|delete``: the team's stacks (stored on the server)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
import typer.core

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
        output,
        [public_stack(s) for s in stacks],
        lambda: table(("", "NAME", "BACKEND", "STORAGE", "REGISTRY"), rows, title="stacks"),
    )


@stack_app.command()
def show(
    name: Annotated[str | None, typer.Argument(help="The stack (default: the active one).")] = None,
    output: OutputOption = Output.text,
) -> None:
    """One stack's settings (values of secret-looking storage options are masked)."""
    stack = _stacks().get(name) if name else _stacks().current()
    emit(output, public_stack(stack), lambda: _print_stack(stack))


@stack_app.command()
def current(output: OutputOption = Output.text) -> None:
    """The active stack (KITARU_STACK, configure(stack=), the project or user config, else default)."""
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    stack = _stacks().current()
    source = settings.sources.get("stack", "default")
    emit(output, {**public_stack(stack), "source": source}, lambda: console().print(f"{stack.name} [dim](from {source})[/dim]"))


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


def _backend_options_help() -> str:
    """Every backend's options, for ``kitaru stack create --help`` (the backend modules import no cloud SDK)."""
    from kitaru.backends import available_backends, backend_options

    sections = []
    for name in available_backends():
        lines = [f"  {option.describe()}" for option in backend_options(name)]
        if not lines:
            continue
        sections.append(f"{name} options (--backend-option KEY=VALUE):\n\n" + "\n\n".join(lines))
    return "\n\n".join(sections)


class _CreateCommand(typer.core.TyperCommand):
    """``stack create``, whose help lists every backend's options (read only when help is shown: the CLI starts fast)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = _backend_options_help()
        super().format_help(ctx, formatter)


@stack_app.command(cls=_CreateCommand)
def create(
    name: Annotated[str, typer.Argument(help="The new stack's name.")],
    backend: Annotated[
        str,
        typer.Option("--backend", "-b", help="The compute backend: local, ray, kuberay, vertex or sagemaker."),
    ] = "local",
    storage_url: Annotated[
        str | None, typer.Option("--storage-url", "-s", help="fsspec URL or directory for checkpoint outputs.")
    ] = None,
    storage_option: Annotated[
        list[str] | None, typer.Option("--storage-option", help="KEY=VALUE (JSON or text) for fsspec; repeatable.")
    ] = None,
    registry: Annotated[str | None, typer.Option("--registry", "-r", help="The container registry of remote backends.")] = None,
    backend_option: Annotated[
        list[str] | None,
        typer.Option("--backend-option", help="KEY=VALUE (JSON or text); repeatable; each backend's options are listed below."),
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

    emit(output, public_stack(stack), text)


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


def public_stack(stack: Any) -> dict[str, Any]:
    """A stack as JSON-ready data, its secret-looking storage options masked (the CLI's and MCP's view)."""
    data = to_jsonable(stack)
    data["storage_options"] = mask_secrets(data["storage_options"])
    return data


def _print_stack(stack: Any) -> None:
    data = public_stack(stack)
    rows = [
        (key, json.dumps(value) if isinstance(value, dict) else ("-" if value is None else str(value)))
        for key, value in data.items()
    ]
    table(("FIELD", "VALUE"), rows, title=f"stack {stack.name}")
