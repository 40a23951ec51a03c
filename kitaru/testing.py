"""Helpers for testing flows: an isolated ``KITARU_HOME``, polling, and crash injection.

Example (pytest)::

    from kitaru.testing import isolated_home

    def test_my_flow(tmp_path):
        with isolated_home(tmp_path):
            assert my_flow.run(3).wait() == 4
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kitaru.config import configure, reset_configuration
from kitaru.llm._fake_server import FakeModelServer

__all__ = ["FakeModelServer", "count_calls", "isolated_home", "kill_process", "wait_for"]

T = TypeVar("T")


@contextlib.contextmanager
def isolated_home(path: str | os.PathLike[str], *, lease_seconds: float | None = None, **settings: Any) -> Iterator[Path]:
    """Run flows with their database and storage under ``path`` (``KITARU_HOME`` for this block).

    Extra keyword arguments go to :func:`kitaru.configure` (``storage_url=``, ``cache=`` …).
    """
    home = Path(path)
    home.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("KITARU_HOME")
    os.environ["KITARU_HOME"] = str(home)
    reset_configuration()
    configure(home=home, lease_seconds=lease_seconds, **settings)
    try:
        yield home
    finally:
        reset_configuration()
        if previous is None:
            os.environ.pop("KITARU_HOME", None)
        else:
            os.environ["KITARU_HOME"] = previous


def wait_for(predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.02, message: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; raise ``TimeoutError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not reached within {timeout} s")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


def count_calls(directory: str | os.PathLike[str], name: str) -> int:
    """Append one line to ``<directory>/<name>``; returns how many calls were counted so far.

    Use it inside a checkpoint to prove how often it ran (the marker-file technique).
    """
    path = Path(directory, name)
    with path.open("a") as handle:
        handle.write("x\n")
        handle.flush()
        os.fsync(handle.fileno())
    return len(path.read_text().splitlines())


def kill_process(pid: int) -> None:
    """SIGKILL ``pid``: the crash a durable flow must survive."""
    os.kill(pid, signal.SIGKILL)
