"""``kitaru ui``: the web UI's address; starts the local server first when none runs.

Remote mode (``KITARU_SERVER_URL`` or ``kitaru login``) prints that server's UI.
Embedded mode uses the server started from this ``KITARU_HOME`` (``kitaru
server start``), starting it on loopback when it is not running.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from kitaru.cli._output import Output, OutputOption, console, emit, error_console

__all__ = ["ui_command"]


def ui_command(
    port: Annotated[int, typer.Option("--port", help="Port of the local server, when this starts it.")] = 8383,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Start the local server without API keys (loopback only).")] = False,
    open_browser: Annotated[
        bool | None, typer.Option("--open/--no-open", help="Open the UI in a browser (default: on a terminal).")
    ] = None,
    output: OutputOption = Output.text,
) -> None:
    """Print the web UI's URL, starting the local Kitaru server if it is not running."""
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    data: dict[str, Any] = {"url": None, "started": False, "server": None, "admin_key": None}
    if settings.server_url:
        data["url"] = f"{settings.server_url.rstrip('/')}/executions"
    else:
        from kitaru_server import process

        from kitaru.client import SERVER_LAUNCHER

        state = process.status(home=settings.home)
        if not state.running:
            state = process.start(
                port=port, no_auth=no_auth, home=settings.home, storage_url=settings.storage_url, launcher=SERVER_LAUNCHER
            )
            data.update(started=True, admin_key=state.admin_key)
        data["server"] = {k: v for k, v in state.to_dict().items() if k != "admin_key"}
        data["url"] = f"{state.url}/executions"
    emit(output, data, lambda: _print(data))
    if open_browser if open_browser is not None else (output is Output.text and sys.stdout.isatty()):
        import webbrowser

        webbrowser.open(data["url"])


def _print(data: dict[str, Any]) -> None:
    server = data["server"]
    if data["started"]:
        error_console().print(
            f"Started the local Kitaru server (pid {server['pid']}, log {server['log_file']}); stop it with `kitaru server stop`."
        )
    if data["admin_key"]:
        error_console().print(f"Sign in with the admin API key (shown once; also in {server['key_file']}):")
        console().print(data["admin_key"], markup=False, highlight=False)
    elif server and server.get("auth"):
        error_console().print(f"Sign in with an API key (the first admin key is in {server['key_file']}).")
    console().print(data["url"], markup=False, highlight=False)
