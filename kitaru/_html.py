"""Compact HTML views of executions for notebooks (``_repr_html_``)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitaru.client import Execution

DEFAULT_UI_URL = "http://127.0.0.1:8383"
_STATUS_COLOURS = {
    "completed": "#1a7f37",
    "cached": "#1a7f37",
    "replayed": "#1a7f37",
    "overridden": "#8250df",
    "failed": "#cf222e",
    "cancelled": "#6e7781",
    "running": "#0969da",
    "waiting": "#bf8700",
    "interrupted": "#bc4c00",
}


def ui_url(service_url: str | None, exec_id: str) -> str:
    """The web UI page of an execution (the server's, or the local one ``kitaru ui`` starts)."""
    base = service_url if service_url and service_url.startswith(("http://", "https://")) else DEFAULT_UI_URL
    return f"{base.rstrip('/')}/executions/{exec_id}"


def execution_html(execution: Execution, link: str) -> str:
    """A small table: the execution's status, then one row per checkpoint call."""

    def badge(status: str) -> str:
        return f'<span style="color:{_STATUS_COLOURS.get(status, "#57606a")};font-weight:600">{html.escape(status)}</span>'

    rows = "".join(
        f"<tr><td><code>{html.escape(c.invocation_id)}</code></td><td>{badge(c.status)}</td><td>{len(c.attempts)}</td>"
        f"<td>{_duration(c)}</td></tr>"
        for c in execution.checkpoints
    )
    waits = "".join(
        f"<li>waiting for <code>{html.escape(w.name)}</code>: {html.escape(w.question or '')}</li>"
        for w in execution.pending_waits
    )
    return (
        f'<div style="font-family:system-ui,sans-serif;font-size:13px">'
        f"<b>{html.escape(execution.flow)}</b> <code>{html.escape(execution.exec_id)}</code> {badge(execution.status)} "
        f'<a href="{html.escape(link)}" target="_blank">open in Kitaru UI</a>'
        f"{f'<ul>{waits}</ul>' if waits else ''}"
        f'<table style="margin-top:4px"><thead><tr><th align="left">call</th><th align="left">status</th><th>attempts</th>'
        f"<th>duration</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _duration(call: object) -> str:
    created, ended = getattr(call, "created_at", None), getattr(call, "ended_at", None)
    return f"{(ended - created).total_seconds():.2f} s" if created and ended else ""
