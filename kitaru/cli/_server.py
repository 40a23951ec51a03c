"""``kitaru server start|stop|status``: the Kitaru server (HTTP API) as a background process."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kitaru.cli._output import Output, OutputOption, console, emit

__all__ = ["server_app"]

server_app = typer.Typer(help="Run the Kitaru server (the HTTP API) in the background.", no_args_is_help=True)


@server_app.command("start")
def start(
    host: Annotated[str, typer.Option("--host", help="Address to bind; not loopback means auth is always on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8383,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes.")] = 1,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without API keys (loopback only).")] = False,
    storage_url: Annotated[
        str | None,
        typer.Option("--storage-url", help="Storage of the 'default' stack (default: storage/ under KITARU_HOME)."),
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option("--max-body-bytes", min=1024, help="Largest request body (default 10 MiB); 413 beyond.")
    ] = None,
    output: OutputOption = Output.text,
) -> None:
    """Start the server; prints the first admin key when it creates one (also in KITARU_HOME/server.key)."""
    from kitaru_server import process

    state = process.start(
        host=host, port=port, workers=workers, no_auth=no_auth, storage_url=storage_url, max_body_bytes=max_body_bytes
    )
    emit(output, state.to_dict(), lambda: _print_started(state))


@server_app.command("stop")
def stop(output: OutputOption = Output.text) -> None:
    """Stop the server started from this KITARU_HOME."""
    from kitaru_server import process

    state = process.stop()
    emit(output, state.to_dict(), lambda: console().print(f"Stopped the Kitaru server (pid {state.pid}) at {state.url}."))


@server_app.command("status")
def status(output: OutputOption = Output.text) -> None:
    """Whether the server started from this KITARU_HOME runs, and where."""
    from kitaru_server import process

    state = process.status()
    emit(output, state.to_dict(), lambda: _print_status(state))


def _print_started(state: Any) -> None:
    out = console()
    out.print(
        f"Kitaru server running at {state.url} (pid {state.pid}, {state.workers} worker(s), "
        f"auth {'on' if state.auth else 'off'}); log: {state.log_file}"
    )
    if state.admin_key:
        out.print(f"Admin API key (shown once; also in {state.key_file}, mode 0600):")
        out.print(state.admin_key, markup=False, highlight=False)
        out.print(f"Connect with: kitaru login {state.url} --api-key <key>")


def _print_status(state: Any) -> None:
    if not state.running:
        console().print("No Kitaru server is running from this KITARU_HOME; start one with `kitaru server start`.")
        return
    console().print(
        f"Kitaru server running at {state.url} (pid {state.pid}, {state.workers} worker(s), auth "
        f"{'on' if state.auth else 'off'}, database {state.database_url}); log: {state.log_file}"
    )
