"""``python -m kitaru.mcp [--transport stdio|http] [--host H] [--port P]``: the same server as ``kitaru mcp``."""

from __future__ import annotations

import argparse
import sys

from kitaru.errors import KitaruError
from kitaru.mcp import DEFAULT_HOST, DEFAULT_PORT, main


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kitaru.mcp", description="Serve Kitaru's MCP tools.")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (no authentication!)")
    args = parser.parse_args(argv)
    try:
        main(args.transport, args.host, args.port, allow_remote=args.allow_remote)
    except KitaruError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
