"""A small flow the container-backend tests run as ``tests.integration.container_flows:hello`` (from the repository root)."""

from __future__ import annotations

from kitaru import checkpoint, flow


@checkpoint
def greet(name: str) -> str:
    return f"hello {name}"


@flow
def hello(name: str = "world") -> str:
    return greet(name)
