"""Kitaru 0.21's module path for the MCP server: ``python -m kitaru.mcp.server`` and ``kitaru.mcp.server:main``.

The server is :func:`kitaru.mcp.build_server`; it registers every tool under this
version's name and under 0.21's ``kitaru_...`` name.
"""

from __future__ import annotations

from typing import Any

from kitaru.mcp import build_server, main

__all__ = ["build_server", "main"]


def __getattr__(name: str) -> Any:
    if name == "mcp":  # 0.21's module-level server object, built on first use (it imports the mcp extra)
        return build_server()
    raise AttributeError(f"module 'kitaru.mcp.server' has no attribute {name!r}")


if __name__ == "__main__":
    main()
