"""Kitaru's MCP server (official ``mcp`` SDK, 2.x): ``kitaru mcp`` over stdio or streamable HTTP.

Tools for executions (list, get, latest, logs, events, run, input, abort_wait,
resume, resume_all, retry, cancel, replay), artifacts (list, get), stacks (list,
get) and status; see :mod:`kitaru.mcp._tools`. The server reads executions
through :class:`~kitaru.KitaruClient` (embedded: the database under
``KITARU_HOME``; remote: ``KITARU_SERVER_URL``) and never starts Ray itself:
tools that run or continue an execution start a detached driver process.

This package is the only place that imports ``mcp`` (the ``mcp`` extra), and only
when a function here is called.

An MCP client starts the stdio server itself, e.g. (Claude Desktop, Cursor)::

    {"mcpServers": {"kitaru": {"command": "kitaru", "args": ["mcp"],
                               "env": {"KITARU_HOME": "/path/to/project/.kitaru"}}}}

``kitaru mcp --transport http`` serves ``http://127.0.0.1:8384/mcp`` instead.
Flow targets given to ``run`` are imported by the driver process, from the
server's working directory.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import TYPE_CHECKING, Literal

from kitaru.errors import KitaruUsageError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "build_server", "main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8384  # next to the Kitaru server's 8383
INSTRUCTIONS = (
    "Kitaru runs durable flows on Ray. Use executions_list / executions_get to observe executions, "
    "executions_input to answer a pending wait (executions_get lists them under pending_waits), "
    "run / executions_replay / executions_resume / executions_retry to start work in a detached driver, "
    "and pass wait_seconds to wait until an execution stops running."
)


def build_server() -> MCPServer:
    """The MCP server with every Kitaru tool registered."""
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError as exc:
        raise KitaruUsageError(
            f"the MCP server needs the mcp extra ({exc}); install it with `pip install 'kitaru[mcp]'`."
        ) from None
    import kitaru
    from kitaru.mcp._tools import LEGACY_NAMES, TOOLS

    server: MCPServer = MCPServer("kitaru", instructions=INSTRUCTIONS, version=kitaru.__version__, log_level="WARNING")
    by_name = {}
    for function, hints in TOOLS:
        server.add_tool(function, annotations=hints)
        by_name[function.__name__] = (function, hints)
    for legacy, name in LEGACY_NAMES.items():
        function, hints = by_name[name]
        server.add_tool(
            function, name=legacy, description=f"{function.__doc__} (Kitaru 0.21's name for {name}.)", annotations=hints
        )
    return server


def main(
    transport: Literal["stdio", "http"] = "stdio",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool = False,
) -> None:
    """Serve the tools over stdio (for a local MCP client) or streamable HTTP at ``http://HOST:PORT/mcp``.

    The HTTP transport has no authentication, and its tools run flows: it binds to a
    loopback address unless ``allow_remote`` is set.
    """
    if transport not in ("stdio", "http"):
        raise KitaruUsageError(f"transport {transport!r} is not stdio or http.")
    if transport == "http" and not allow_remote and not _is_loopback(host):
        raise KitaruUsageError(
            f"host {host!r} is not a loopback address and the MCP server has no authentication; "
            "bind to 127.0.0.1, or pass --allow-remote behind your own authenticating proxy."
        )
    server = build_server()
    if transport == "stdio":
        server.run("stdio")
        return
    print(f"Kitaru MCP server on http://{host}:{port}/mcp", file=sys.stderr, flush=True)
    server.run("streamable-http", host=host, port=port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
