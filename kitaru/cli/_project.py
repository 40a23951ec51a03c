"""``kitaru init|login|logout|status|info|run``: the project, the connection, and running a flow."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from kitaru.cli._output import (
    Output,
    OutputOption,
    console,
    emit,
    error_console,
    mask_secrets,
    parse_object,
    progress,
    status_text,
    table,
    to_jsonable,
)
from kitaru.errors import KitaruUsageError

_GITIGNORE = "# Kitaru's local database, storage and logs; config.yaml is meant to be committed.\n*\n!config.yaml\n!.gitignore\n"
_CONFIG = "# Kitaru project configuration (see `kitaru info`). Keys: stack, cache, retries, storage_url, storage_options.\n"
_TERMINAL = ("completed", "failed", "cancelled")


def register(app: typer.Typer) -> None:
    for command in (init, login, logout, status, info, run):
        app.command()(command)


def init(output: OutputOption = Output.text) -> None:
    """Make the current directory a Kitaru project: creates .kitaru/ (config.yaml, database, storage). Idempotent."""
    project = Path.cwd() / ".kitaru"
    created = not project.is_dir()
    project.mkdir(exist_ok=True)
    config = project / "config.yaml"
    if not config.exists():
        config.write_text(_CONFIG)
    ignore = project / ".gitignore"
    if not ignore.exists():
        ignore.write_text(_GITIGNORE)
    data = {"project": str(project), "config": str(config), "created": created}
    emit(
        output,
        data,
        lambda: console().print(
            f"{'Initialised' if created else 'Already initialised:'} Kitaru project in {project}"
            + ("" if created else " (nothing changed)")
        ),
    )


def login(
    url: Annotated[str, typer.Argument(help="The Kitaru server, e.g. http://127.0.0.1:8383.")],
    api_key: Annotated[str | None, typer.Option("--api-key", help="An API key of that server.", envvar=None)] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the URL and key before saving them.")] = True,
    output: OutputOption = Output.text,
) -> None:
    """Use a Kitaru server (remote mode): saves its URL and API key in the user config file."""
    from kitaru.config import write_user_config

    if not url.startswith(("http://", "https://")):
        raise KitaruUsageError(f"server URL {url!r} must start with http:// or https://, e.g. http://127.0.0.1:8383.")
    url = url.rstrip("/")
    if verify:
        from kitaru._service import connect_service

        with progress(f"connecting to {url}"):
            connect_service(url, api_key).list_executions(limit=1)
    path = write_user_config(server_url=url, api_key=api_key)
    emit(output, {"server_url": url, "config": str(path)}, lambda: console().print(f"Logged in to {url} (saved in {path})"))


def logout(output: OutputOption = Output.text) -> None:
    """Stop using a Kitaru server: removes its URL and API key from the user config file (back to embedded mode)."""
    from kitaru.config import read_user_config, write_user_config

    previous = read_user_config().get("server_url")
    path = write_user_config(server_url=None, api_key=None)
    data = {"server_url": previous, "config": str(path)}
    emit(
        output,
        data,
        lambda: console().print(f"Logged out of {previous}" if previous else "Not logged in to a server; nothing changed."),
    )


def status(output: OutputOption = Output.text) -> None:
    """Where executions are recorded (embedded database or server), whether it answers, and executions by status."""
    from kitaru.cli._output import status_report
    from kitaru.cli._warm import local_services, print_local_services

    data = status_report()
    data.update(local_services(data["home"]))

    def text() -> None:
        where = "server" if data["mode"] == "remote" else "database"
        reach = "[green]yes[/green]" if data["reachable"] else f"[red]no[/red] ({data['error']})"
        console().print(
            f"mode:      {data['mode']}\n{where}:{' ' * (10 - len(where))}{data['service_url']}\nreachable: {reach}\n"
            f"stack:     {data['stack']}\nhome:      {data['home']}"
        )
        print_local_services(data)
        if data["reachable"]:
            table(
                ("STATUS", "EXECUTIONS"),
                [(status_text(k), str(v)) for k, v in data["counts"].items()] + [("total", str(data["total"]))],
                title="executions",
            )

    emit(output, data, text)
    if not data["reachable"]:
        raise typer.Exit(1)


def info(output: OutputOption = Output.text) -> None:
    """The effective configuration and where each value comes from."""
    from kitaru.config import find_project_dir, resolve_settings, user_config_path

    settings = _with_stack(resolve_settings())
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != "sources"}
    if values.get("api_key"):
        values["api_key"] = "****" + str(values["api_key"])[-4:]
    values["storage_options"] = mask_secrets(values["storage_options"])
    derived = {"database_url": "derived from home", "service_url": "server_url, else database_url"}
    values["service_url"] = settings.service_url
    rows = {
        key: {"value": value, "source": settings.sources.get(key, derived.get(key, "default"))} for key, value in values.items()
    }
    project = find_project_dir()
    data = {"settings": rows, "project": str(project) if project else None, "user_config": str(user_config_path())}

    def text() -> None:
        table(
            ("SETTING", "VALUE", "SOURCE"), [(k, _show(v["value"]), v["source"]) for k, v in rows.items()], title="configuration"
        )
        console().print(f"project:     {data['project'] or '-'} \nuser config: {data['user_config']}")

    emit(output, data, text)


def run(
    target: Annotated[str, typer.Argument(help="The flow: MODULE:FLOW or PATH.py:FLOW.")],
    input: Annotated[
        str, typer.Option("--input", "-i", help='The flow\'s keyword arguments as a JSON object, e.g. \'{"topic": "ray"}\'.')
    ] = "{}",
    exec_id: Annotated[
        str | None, typer.Option("--exec-id", help="Idempotency key: an id that completed returns its result.")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start a detached driver process and print the execution id.")
    ] = False,
    stack: Annotated[str | None, typer.Option("--stack", help="The stack to run on (default: the active one).")] = None,
    output: OutputOption = Output.text,
) -> None:
    """Run a flow and wait for its result (with --detach: start it in the background and print its id)."""
    inputs = parse_object(input, "--input", example='\'{"topic": "ray"}\'')
    if stack is not None:
        from kitaru.client import KitaruClient
        from kitaru.config import configure

        KitaruClient().stacks.get(stack)  # an unknown stack fails here, naming `kitaru stack list`
        configure(stack=stack)
    if detach:
        _run_detached(target, inputs, exec_id, output)
        return
    from kitaru.client import KitaruClient
    from kitaru.config import resolve_settings
    from kitaru.runtime import ensure_ray, load_flow

    flow = load_flow(target)
    with progress(f"starting flow {flow.name}") as update:
        if not _runs_remotely(flow):
            ensure_ray(
                resolve_settings(), log_to_driver=False
            )  # stdout is the result: checkpoint output goes to `executions logs`
        handle = flow.run(exec_id=exec_id, **inputs)
        try:
            _follow(handle, update)
        except KeyboardInterrupt:
            error_console().print(
                f"stopped waiting; execution {handle.exec_id} is interrupted once its lease lapses: "
                f"`kitaru executions resume {handle.exec_id}`."
            )
            raise
    result = handle.get()  # raises the execution's error: one line and exit code 1
    execution = KitaruClient().executions.get(handle.exec_id)
    data = {**to_jsonable(execution), "result": to_jsonable(result)}

    def text() -> None:
        from rich.pretty import Pretty

        error_console().print(f"execution {handle.exec_id} [green]completed[/green]")
        console().print(Pretty(result) if not isinstance(result, str) else result)

    emit(output, data, text)


def _follow(handle: Any, update: Any) -> None:
    """Poll until the execution is terminal, saying what it is doing (and how to answer a wait)."""
    delay = 0.05
    while True:
        state = handle.status
        if state in _TERMINAL:
            return
        if state == "waiting" and _interactive():
            update.pause()  # the driver asks for the input on this terminal
        elif state == "waiting":
            waits = handle.execution().pending_waits
            name = waits[0].name if waits else "?"
            update(
                f"execution {handle.exec_id} is waiting for input on {name!r}: "
                f"kitaru executions input {handle.exec_id} --wait {name} --value JSON"
            )
        else:
            update(f"execution {handle.exec_id} is {state}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _interactive() -> bool:
    from kitaru.runtime import prompts_on_terminal

    return prompts_on_terminal()


def _with_stack(settings: Any) -> Any:
    """The settings a run would use: with the active stack's storage (unchanged, and the reason noted, if it cannot be read)."""
    from kitaru._service import connect_service
    from kitaru._stacks import apply_stack

    if settings.stack in (None, "default"):
        return settings
    try:
        return apply_stack(settings, connect_service(settings.service_url, settings.api_key), settings.stack)
    except Exception as exc:  # noqa: BLE001 - info still shows the rest
        sources = {**settings.sources, "stack": f"{settings.sources.get('stack')} ({_describe(exc)})"}
        return dataclasses.replace(settings, sources=sources)


def _describe(exc: BaseException) -> str:
    from kitaru.cli._output import describe

    return describe(exc)


def _runs_remotely(flow: Any) -> bool:
    """Whether the flow's stack runs drivers elsewhere (then this command starts no Ray)."""
    from kitaru.backends.remote import remote_backend
    from kitaru.client import KitaruClient
    from kitaru.config import resolve_settings

    return remote_backend(KitaruClient().service, flow.stack or resolve_settings().stack) is not None


def _run_detached(target: str, inputs: dict[str, Any], exec_id: str | None, output: Output) -> None:
    from kitaru.client import KitaruClient

    with progress("starting a driver process"):
        handle = KitaruClient().executions.run(target, inputs=inputs, exec_id=exec_id, detach=True)
    details = handle.submission.details if handle.submission is not None else {}
    data = {"exec_id": handle.exec_id, "pid": details.get("pid"), "log": details.get("log")}

    def text() -> None:
        error_console().print(f"started execution {handle.exec_id} in a detached driver (pid {data['pid']}, log {data['log']})")
        typer.echo(handle.exec_id)

    emit(output, data, text)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        import json

        return json.dumps(value) if value else "-"
    return "-" if value is None else str(value)
