"""``kitaru executions list|get|logs|input|resume|retry|cancel|replay``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kitaru.cli._output import (
    Output,
    OutputOption,
    console,
    duration,
    emit,
    error_console,
    parse_json,
    parse_pairs,
    progress,
    status_text,
    table,
    to_jsonable,
    when,
)
from kitaru.errors import KitaruUsageError

if TYPE_CHECKING:
    from kitaru.flow import FlowHandle

executions_app = typer.Typer(help="Observe executions and act on them.", no_args_is_help=True)

_TERMINAL = ("completed", "failed", "cancelled")
_SOURCES = ("step", "runner")
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Wait until the execution is terminal or waiting for input, and print it.")
]


def _client() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient()


# --- reading --------------------------------------------------------------------------------------


@executions_app.command("list")
def list_(
    flow: Annotated[str | None, typer.Option("--flow", "-f", help="Only executions of this flow.")] = None,
    status: Annotated[str | None, typer.Option("--status", "-s", help="Only executions in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many (newest first).")] = 50,
    output: OutputOption = Output.text,
) -> None:
    """Executions, newest first."""
    executions = _client().executions.list(flow=flow, status=status, limit=limit)
    rows = [
        (
            e.exec_id,
            e.flow,
            status_text(e.status),
            when(e.created_at),
            duration(e.started_at, e.ended_at),
            e.original_exec_id or "",
        )
        for e in executions
    ]
    emit(
        output,
        executions,
        lambda: table(("EXEC ID", "FLOW", "STATUS", "CREATED", "DURATION", "REPLAY OF"), rows, title="executions"),
    )


@executions_app.command()
def get(exec_id: Annotated[str, typer.Argument(help="The execution id.")], output: OutputOption = Output.text) -> None:
    """One execution with its checkpoint calls and pending waits."""
    execution = _client().executions.get(exec_id)
    emit(output, execution, lambda: _print_execution(execution))


@executions_app.command()
def logs(
    exec_id: Annotated[str, typer.Argument(help="The execution id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-F", help="Keep printing new entries until the execution is terminal.")
    ] = False,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", "-c", help="Only this checkpoint call (invocation id).")
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only 'step' (checkpoints) or 'runner' (the flow body).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="At most this many entries.")] = None,
    driver: Annotated[
        bool, typer.Option("--driver", help="The driver job's own log on a remote backend (a Ray job's driver log).")
    ] = False,
    output: OutputOption = Output.text,
) -> None:
    """Captured output and logging of the flow body and its checkpoints (--driver: the remote driver job's log)."""
    if source is not None and source not in _SOURCES:
        raise KitaruUsageError(f"--source is {source!r}; use 'step' (checkpoints) or 'runner' (the flow body).")
    client = _client()
    client.service.get_execution(exec_id, with_calls=False)  # an unknown id fails here
    if driver:
        lines = client.executions.driver_logs(exec_id, follow=follow)
        for printed, line in enumerate(lines, start=1):
            if output is Output.text:
                console().print(line, markup=False, highlight=False)
            else:
                print(json.dumps({"line": line}))
            if limit is not None and printed >= limit:
                return
        return
    if not follow:
        entries = client.executions.logs(exec_id, checkpoint=checkpoint, source=source, limit=limit)
        emit(output, entries, lambda: [_print_log(entry, output) for entry in entries])
        return
    stream = client.executions.stream_logs(exec_id, checkpoint=checkpoint, source=source)  # -o json: one object a line
    for printed, entry in enumerate(stream, start=1):
        _print_log(entry, output)
        if limit is not None and printed >= limit:
            stream.close()
            return


@executions_app.command("input")
def input_(
    exec_id: Annotated[str, typer.Argument(help="The execution id.")],
    value: Annotated[
        str, typer.Option("--value", "-v", help="The input as JSON (a plain string is accepted when the wait expects a string).")
    ],
    wait: Annotated[
        str | None, typer.Option("--wait", "-w", help="The wait's name (optional when exactly one is pending).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Resume a suspended execution in a detached driver.")
    ] = True,
    output: OutputOption = Output.text,
) -> None:
    """Answer a pending wait; a suspended execution is resumed in a detached driver (unless --no-resume)."""
    client = _client()
    name = client.executions._wait_name(exec_id, wait)
    schema = client.service.get_wait(exec_id, name)["schema"]
    parsed = _parse_value(value, schema)
    client.executions.input(exec_id, wait=name, value=parsed, resume=False)
    record = client.service.get_execution(exec_id, with_calls=False)
    data: dict[str, Any] = {"exec_id": exec_id, "wait": name, "value": parsed, "resumed": False, "pid": None, "log": None}
    if resume and record["status"] == "waiting" and record.get("driver_id") is None:
        handle = _detached(lambda: client.executions.resume(exec_id, detach=True))
        data.update(resumed=True, **_driver_fields(handle))

    def text() -> None:
        console().print(f"answered wait {name!r} of execution {exec_id}")
        if data["resumed"]:
            error_console().print(f"resumed it in a detached driver (pid {data['pid']}, log {data['log']})")
        elif record["status"] == "waiting" and record.get("driver_id") is None:
            error_console().print(f"it stays suspended; resume it with `kitaru executions resume {exec_id}`")

    emit(output, data, text)


# --- acting ---------------------------------------------------------------------------------------


@executions_app.command()
def resume(
    exec_id: Annotated[str | None, typer.Argument(help="The execution id (or --all).")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every interrupted execution, and every suspended one whose input arrived.")
    ] = False,
    wait: WaitOption = False,
    output: OutputOption = Output.text,
) -> None:
    """Continue an interrupted, suspended or cancelled execution in a detached driver process."""
    from kitaru.contracts.lifecycle import RESUMABLE, check_continue

    client = _client()
    if all_ == (exec_id is not None):
        raise KitaruUsageError("give an execution id or --all, not both or neither.")
    ids = client.executions.resumable_ids() if all_ else [exec_id]
    if not ids:
        emit(output, {"exec_ids": [], "pid": None, "log": None}, lambda: console().print("nothing to resume"))
        return
    for i in ids:  # a completed or running one is an error here, where a script's resume() returns its handle
        check_continue(client.service.get_execution(i, with_calls=False), RESUMABLE)
    handles = [_detached(lambda i=i: client.executions.resume(i, detach=True)) for i in ids if i is not None]
    _report(output, handles, wait, "resumed")


@executions_app.command()
def retry(
    exec_id: Annotated[str, typer.Argument(help="The failed execution's id.")],
    wait: WaitOption = False,
    output: OutputOption = Output.text,
) -> None:
    """Run a failed execution again in a detached driver: completed calls are reused, failed ones re-run with the current code."""
    client = _client()
    _report(output, [_detached(lambda: client.executions.retry(exec_id, detach=True))], wait, "retrying")


@executions_app.command()
def cancel(exec_id: Annotated[str, typer.Argument(help="The execution id.")], output: OutputOption = Output.text) -> None:
    """Cancel an execution (its running checkpoints are stopped); returns once it is cancelled."""
    with progress(f"cancelling execution {exec_id}"):
        execution = _client().executions.cancel(exec_id)
    emit(
        output,
        execution,
        lambda: console().print(
            f"execution {exec_id} is [dim]cancelled[/dim]; resume it with `kitaru executions resume {exec_id}`"
        ),
    )


@executions_app.command()
def replay(
    exec_id: Annotated[str, typer.Argument(help="The execution to replay.")],
    at: Annotated[
        str, typer.Option("--at", help="The invocation id (or checkpoint name: its first call) from which calls run live.")
    ],
    override: Annotated[
        list[str] | None, typer.Option("--override", help='INV=\'{"output": VALUE}\' (or "input", "model", "code"); repeatable.')
    ] = None,
    flow_override: Annotated[
        list[str] | None, typer.Option("--flow-override", help="ARG=JSON: a flow argument to change; repeatable.")
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="An invocation id in the live part to reuse anyway; repeatable.")
    ] = None,
    new_id: Annotated[str | None, typer.Option("--exec-id", help="The new execution's id (default: a new uuid).")] = None,
    wait: WaitOption = False,
    output: OutputOption = Output.text,
) -> None:
    """Replay an execution as a new, linked one in a detached driver; calls before --at reuse their recorded outputs."""
    overrides = {}
    for selector, raw in parse_pairs(override, "--override", json_values=False).items():
        spec = parse_json(raw, f"--override {selector}", example='summarize=\'{"output": "short"}\'')
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("output", "input", "model", "code"):
            raise KitaruUsageError(
                f'--override {selector} must be one of {{"output": VALUE}}, {{"input": {{ARG: VALUE}}}}, '
                '{"model": "provider/model"} or {"code": "module:function"}.'
            )
        overrides[selector] = spec
    flow_overrides = {
        arg: parse_json(raw, f"--flow-override {arg}", example="topic='\"ray\"'")
        for arg, raw in parse_pairs(flow_override, "--flow-override", json_values=False).items()
    }
    client = _client()
    handle = _detached(
        lambda: client.executions.replay(
            exec_id,
            at=at,
            flow_overrides=flow_overrides or None,
            invocation_overrides=overrides or None,
            skip=list(skip) if skip else None,
            new_exec_id=new_id,
            detach=True,
        )
    )
    _report(output, [handle], wait, f"replaying {exec_id} as")


# --- helpers --------------------------------------------------------------------------------------


def _parse_value(raw: str, schema: dict[str, Any] | None) -> Any:
    """``--value`` as JSON; a plain string when it is not JSON and the wait expects a string (SPEC §3.7)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if schema is not None and schema.get("type") == "string":
            return raw
        return parse_json(
            raw, "--value", example="--value true, --value 42, --value '{\"approved\": true}' or --value '\"text\"'"
        )


def _detached(start: Callable[[], FlowHandle]) -> FlowHandle:
    """Start a detached driver through the client, with a progress display until it holds its execution."""
    with progress("starting a driver process"):
        return start()


def _driver_fields(handle: FlowHandle) -> dict[str, Any]:
    details = handle.submission.details if handle.submission is not None else {}
    return {"pid": details.get("pid"), "log": details.get("log")}


def _report(output: Output, handles: list[FlowHandle], wait: bool, verb: str) -> None:
    exec_ids = [handle.exec_id for handle in handles]
    if wait:
        executions = [_settle(exec_id) for exec_id in exec_ids]
        emit(output, executions if len(executions) > 1 else executions[0], lambda: [_print_execution(e) for e in executions])
        if any(e.status in ("failed", "cancelled") for e in executions):
            raise typer.Exit(1)
        return
    data = {"exec_ids": exec_ids, **_driver_fields(handles[-1])}
    if len(handles) > 1:
        data["drivers"] = [_driver_fields(handle) for handle in handles]
    emit(
        output,
        data,
        lambda: console().print(f"{verb} {', '.join(exec_ids)} in a detached driver (pid {data['pid']}, log {data['log']})"),
    )


def _settle(exec_id: str) -> Any:
    """Wait until the execution is terminal or suspended on a wait; returns it."""
    client = _client()
    delay = 0.05
    with progress(f"waiting for execution {exec_id}") as update:
        while True:
            record = client.service.get_execution(exec_id, with_calls=False)
            if record["status"] in _TERMINAL or (record["status"] == "waiting" and record.get("driver_id") is None):
                return client.executions.get(exec_id)
            update(f"execution {exec_id} is {record['status']}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


def _print_execution(e: Any) -> None:
    from rich.table import Table

    from kitaru.cli._output import _escape

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    fields = [
        ("exec id", e.exec_id),
        ("flow", e.flow),
        ("status", status_text(e.status)),
        ("created", when(e.created_at)),
        ("duration", duration(e.started_at, e.ended_at)),
        ("inputs", _escape(json.dumps(to_jsonable(e.inputs)))),
    ]
    if e.original_exec_id:
        fields.append(("replay of", e.original_exec_id))
    if e.stack:
        fields.append(("stack", e.stack))
    if e.failure:
        where = f" in {e.failure.invocation_id}" if e.failure.invocation_id else ""
        fields.append(("failure", _escape(f"{e.failure.type}{where}: {e.failure.message} ({e.failure.origin})")))
    if e.metadata.get("ray_job_id"):
        fields.append(("ray job", str(e.metadata["ray_job_id"])))
    if e.dashboard_url:
        fields.append(("dashboard", e.dashboard_url))
    for label, value in fields:
        grid.add_row(label, value)
    console().print(grid)
    calls = [
        (
            c.invocation_id,
            c.name,
            c.checkpoint_type or "",
            status_text(c.status),
            str(len(c.attempts)),
            duration(c.created_at, c.ended_at) if c.ended_at else "-",
            _where(c.attempts[-1]) if c.attempts else "",
        )
        for c in e.checkpoints
    ]
    table(
        ("INVOCATION", "CHECKPOINT", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "LAST ATTEMPT (RAY TASK, NODE, PID)"),
        calls,
        title="checkpoint calls",
    )
    if e.pending_waits:
        table(
            ("WAIT", "QUESTION", "EXPECTS"),
            [(w.name, w.question or "", json.dumps(w.schema) if w.schema else "any input") for w in e.pending_waits],
            title="pending waits",
        )
        console().print(f"answer with `kitaru executions input {e.exec_id} --wait {e.pending_waits[0].name} --value JSON`")


def _print_log(entry: Any, output: Output) -> None:
    if output is Output.json:
        typer.echo(json.dumps(to_jsonable(entry)))  # one JSON object per line, so --follow streams
        return
    from rich.text import Text

    where = entry.invocation_id or "flow"
    attempt = f"#{entry.attempt}" if entry.attempt and entry.attempt > 1 else ""
    line = Text(f"{entry.timestamp.astimezone().strftime('%H:%M:%S.%f')[:-3]} ", style="dim")
    line.append(f"{where}{attempt} ", style="cyan")
    line.append(f"{entry.level:<7} ", style="red" if entry.level in ("ERROR", "CRITICAL") else "dim")
    line.append(entry.message)
    console().print(line)


def _where(attempt: Any) -> str:
    """Where an attempt ran: its Ray task id, node id (shortened) and worker pid."""
    parts = [attempt.ray_task_id or "inline", (attempt.ray_node_id or "")[:12], str(attempt.worker_pid or "")]
    return " ".join(part for part in parts if part)
