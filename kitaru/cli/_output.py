"""Rendering for the CLI: ``-o text`` (rich tables) or ``-o json`` (the client objects' fields), errors and exit codes.

Exit codes: 0 success; 2 a usage error or something that does not exist
(:class:`~kitaru.KitaruUsageError`, :class:`~kitaru.KitaruNotFoundError`, a bad option);
1 any other failure. An error is one line on stderr saying what to do; set
``KITARU_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from kitaru.errors import KitaruError, KitaruNotFoundError, KitaruUsageError

__all__ = [
    "Output",
    "OutputOption",
    "Progress",
    "console",
    "describe",
    "emit",
    "error_console",
    "exit_code_for",
    "fail",
    "mask_secrets",
    "parse_json",
    "parse_object",
    "parse_pairs",
    "print_error",
    "progress",
    "status_text",
    "table",
    "to_jsonable",
]


class Output(enum.StrEnum):
    """How a command prints its result."""

    text = "text"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text (tables) or json (the client objects' fields).")]

STATUS_STYLES = {
    "completed": "green",
    "cached": "green",
    "replayed": "green",
    "overridden": "cyan",
    "running": "blue",
    "pending": "blue",
    "waiting": "yellow",
    "interrupted": "magenta",
    "failed": "red",
    "cancelled": "dim",
}


# --- consoles -------------------------------------------------------------------------------------


def console() -> Any:
    """A console on stdout (looked up at call time, so test runners that swap ``sys.stdout`` see the output)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=False, highlight=False)


def error_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else 1000, highlight=False)


class Progress:
    """Changes the spinner's text (call it), or hides it while the terminal is needed for something else (``pause``)."""

    def __init__(self, status: Any) -> None:
        self._status = status
        self._paused = False

    def __call__(self, text: str) -> None:
        self._status.update(text)
        if self._paused:
            self._paused = False
            self._status.start()

    def pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._status.stop()


@contextlib.contextmanager
def progress(message: str) -> Iterator[Progress]:
    """A spinner on stderr while something long runs (shown on a terminal only)."""
    status = error_console().status(message, spinner="dots")
    with status:
        yield Progress(status)


# --- values ---------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A client object as JSON-ready data: its public fields (dataclass fields shown in its repr), datetimes as ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.repr and not f.name.startswith("_")
        }
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="json"))
    return repr(value)


def emit(output: Output, data: Any, text: Callable[[], None]) -> None:
    """Print ``data`` as JSON for ``-o json``, else call ``text`` to render it for humans."""
    if output is Output.json:
        typer.echo(json.dumps(to_jsonable(data), indent=2))
    else:
        text()


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """Print a rich table (an empty one says so instead)."""
    from rich.table import Table

    if not rows:
        console().print(f"[dim]no {title or 'rows'}[/dim]")
        return
    grid = Table(*columns, title=title, title_justify="left", header_style="bold")
    for row in rows:
        grid.add_row(*(cell if not isinstance(cell, str) else _escape(cell) for cell in row))
    console().print(grid)


def status_text(status: str) -> Any:
    from rich.text import Text

    return Text(status, style=STATUS_STYLES.get(status, ""))


def when(value: dt.datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None:
        return "-"
    seconds = ((end or dt.datetime.now(dt.UTC)) - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


_SECRET_KEY = re.compile(r"secret|token|password|key|credential", re.IGNORECASE)


def mask_secrets(options: dict[str, Any]) -> dict[str, Any]:
    """Options with the values of secret-looking keys (``secret``, ``token``, ``key``...) replaced by ``****``."""
    return {k: ("****" if _SECRET_KEY.search(str(k)) else v) for k, v in options.items()}


# --- parsing --------------------------------------------------------------------------------------


def parse_json(raw: str, option: str, *, example: str) -> Any:
    """``raw`` parsed as JSON; a :class:`KitaruUsageError` naming ``option`` when it is not."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KitaruUsageError(f"{option} is not valid JSON ({exc.msg} at character {exc.pos}); give e.g. {example}.") from None


def parse_object(raw: str, option: str, *, example: str) -> dict[str, Any]:
    value = parse_json(raw, option, example=example)
    if not isinstance(value, dict):
        raise KitaruUsageError(f"{option} must be a JSON object, not {type(value).__name__}; give e.g. {example}.")
    return value


def parse_pairs(items: Sequence[str] | None, option: str, *, json_values: bool) -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict; with ``json_values`` each value is JSON (a bare word is taken as a string)."""
    pairs: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise KitaruUsageError(f"{option} takes KEY=VALUE, not {item!r}.")
        if json_values:
            try:
                pairs[key] = json.loads(raw)
            except json.JSONDecodeError:
                pairs[key] = raw
        else:
            pairs[key] = raw
    return pairs


# --- errors ---------------------------------------------------------------------------------------


def fail(message: str, *, code: int = 1) -> typer.Exit:
    """Print ``message`` as the one error line; returns the exit to raise."""
    print_error(message)
    return typer.Exit(code)


def print_error(message: str) -> None:
    text = " ".join(str(message).split())  # one line, whatever the exception's message holds
    error_console().print(f"[bold red]error:[/bold red] {_escape(text)}")


def exit_code_for(exc: BaseException) -> int:
    return 2 if isinstance(exc, (KitaruUsageError, KitaruNotFoundError)) else 1


def describe(exc: BaseException) -> str:
    """The one-line message for an exception that reached the CLI."""
    if isinstance(exc, KitaruError):
        return str(exc)
    module = type(exc).__module__.split(".")[0]
    if module in ("httpx", "httpcore", "httpx2") or isinstance(exc, ConnectionError):
        return (
            f"cannot reach the Kitaru server at {_server_url()}: {exc or type(exc).__name__}; "
            "check the URL (`kitaru login URL`) and that the server runs."
        )
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}."
    return f"unexpected {type(exc).__name__}: {exc}; rerun with KITARU_DEBUG=1 for the traceback and report it."


def debug_enabled() -> bool:
    return os.environ.get("KITARU_DEBUG", "").lower() in ("1", "true", "yes")


def _server_url() -> str:
    try:
        from kitaru.config import resolve_settings

        return resolve_settings().server_url or "(no server configured)"
    except Exception:  # noqa: BLE001 - only for an error message
        return "(unknown)"


def status_report() -> dict[str, Any]:
    """Where executions are recorded, whether that answers, the active stack and executions by status (CLI and MCP)."""
    from kitaru._service import connect_service, is_remote
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    remote = is_remote(settings.service_url)
    data: dict[str, Any] = {
        "mode": "remote" if remote else "embedded",
        "service_url": settings.server_url if remote else settings.database_url,
        "home": str(settings.home),
        "stack": settings.stack or "default",
        "reachable": False,
        "error": None,
        "counts": {},
        "total": 0,
    }
    try:
        counts = connect_service(settings.service_url, settings.api_key).execution_counts()
    except Exception as exc:  # noqa: BLE001 - reported as "not reachable" with its reason
        data["error"] = describe(exc)
    else:
        data.update(reachable=True, counts=dict(sorted(counts.items())), total=sum(counts.values()))
    return data
