"""``kitaru mcp``: serve Kitaru's tools to MCP clients (the server lives in :mod:`kitaru.mcp`)."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

__all__ = ["mcp_command"]


class Transport(enum.StrEnum):
    """How MCP clients reach the server."""

    stdio = "stdio"
    http = "http"


def mcp_command(
    transport: Annotated[
        Transport, typer.Option("--transport", "-t", help="stdio (an MCP client starts this) or http (streamable HTTP at /mcp).")
    ] = Transport.stdio,
    host: Annotated[str, typer.Option("--host", help="The address to bind with --transport http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="The port to bind with --transport http.")] = 8384,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback --host (the MCP server has no authentication).")
    ] = False,
) -> None:
    """Serve Kitaru's MCP tools (executions, artifacts, stacks, status) over stdio or streamable HTTP."""
    from kitaru.mcp import main

    main(transport.value, host, port, allow_remote=allow_remote)
