"""``kitaru up|down``: the warm local Ray (with its dashboard) and the local server of this ``KITARU_HOME``."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from kitaru.cli._output import Output, OutputOption, console, emit, error_console

__all__ = ["down", "local_services", "print_local_services", "up"]


def up(
    port: Annotated[int, typer.Option("--port", help="The Ray head's GCS port (what KITARU_RAY_ADDRESS would name).")] = 6379,
    dashboard_port: Annotated[int, typer.Option("--dashboard-port", help="The Ray dashboard's port.")] = 8265,
    server_port: Annotated[int, typer.Option("--server-port", help="The local Kitaru server's port.")] = 8383,
    num_cpus: Annotated[int | None, typer.Option("--num-cpus", min=1, help="CPUs the head offers (default: all).")] = None,
    server: Annotated[bool, typer.Option("--server/--no-server", help="Also start the local Kitaru server (UI, API).")] = True,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Start the local server without API keys (loopback only).")] = False,
    output: OutputOption = Output.text,
) -> None:
    """Keep a local Ray head (with its dashboard) and the local server running; runs of this KITARU_HOME join them."""
    from kitaru.config import resolve_settings
    from kitaru.runtime import warm as warm_ray

    home = resolve_settings().home
    data: dict[str, Any] = {"started": False, "admin_key": None}
    warm = warm_ray.status(home)
    if warm is None:
        warm = warm_ray.start(home, port=port, dashboard_port=dashboard_port, num_cpus=num_cpus)
        data["started"] = True
    server_state = None
    if server:
        server_state = _server_status(home)
        if server_state is not None and not server_state.running:
            from kitaru_server import process

            server_state = process.start(port=server_port, no_auth=no_auth, home=home)
            data["admin_key"] = server_state.admin_key
    data.update(local_services(home))

    def text() -> None:
        if not data["started"]:
            error_console().print("The warm local Ray of this KITARU_HOME was already up.")
        print_local_services(data)
        if data["admin_key"]:
            error_console().print("Admin API key of the local server (shown once; also in its key file):")
            console().print(data["admin_key"], markup=False, highlight=False)

    emit(output, data, text)


def down(output: OutputOption = Output.text) -> None:
    """Stop the warm local Ray and the local server of this KITARU_HOME (exit 0 when nothing was up).

    Executions running on that Ray are left ``interrupted`` (their drivers exit); the output names
    them, and ``kitaru executions resume`` continues each one from its committed calls.
    """
    from kitaru.config import resolve_settings
    from kitaru.runtime import warm as warm_ray

    home = resolve_settings().home
    warm = warm_ray.status(home)
    joined = _executions_on(warm) if warm is not None else []
    stopped = warm_ray.stop(home)
    if stopped is not None and joined:
        _await_interrupted(joined)
    server_state = _server_status(home)
    server_stopped = None
    if server_state is not None and server_state.running:
        from kitaru_server import process

        server_stopped = process.stop(home=home).url
    data = {"ray": stopped.to_dict() if stopped else None, "server_url": server_stopped, "interrupted": joined}

    def text() -> None:
        if stopped is None and server_stopped is None:
            console().print("Nothing was up for this KITARU_HOME; nothing to stop.")
            return
        if stopped is not None:
            console().print(f"Stopped the warm local Ray (pid {stopped.pid}, {stopped.gcs_address}).")
        for exec_id in joined:
            console().print(
                f"Execution {exec_id} was running on it and is interrupted; `kitaru executions resume {exec_id}` continues it.",
                markup=False,
            )
        if server_stopped is not None:
            console().print(f"Stopped the local Kitaru server at {server_stopped}.")

    emit(output, data, text)


_INTERRUPT_WAIT_SECONDS = 15.0  # their drivers release them within seconds; a lease left behind lapses by itself


def _executions_on(warm: Any) -> list[str]:
    """The executions driven now by processes joined to ``warm`` (matched by their Ray job ids).

    Best effort: an unreachable service names none, and never keeps ``down`` from stopping anything.
    """
    from kitaru import KitaruClient
    from kitaru.errors import KitaruError
    from kitaru.runtime import warm as warm_ray

    jobs = set(warm_ray.joined_jobs(warm))
    if not jobs:
        return []
    try:
        service = KitaruClient().service
        rows = [row for status in ("running", "waiting") for row in service.list_executions(status=status, limit=10_000)]
    except KitaruError:
        return []
    return sorted(row["exec_id"] for row in rows if row["driver_id"] and (row["metadata"] or {}).get("ray_job_id") in jobs)


def _await_interrupted(exec_ids: list[str]) -> None:
    """Wait (briefly) until the drivers of ``exec_ids`` have released them, so the report is true when printed."""
    import time

    from kitaru import KitaruClient
    from kitaru.errors import KitaruError

    deadline = time.monotonic() + _INTERRUPT_WAIT_SECONDS
    with contextlib.suppress(KitaruError):
        service = KitaruClient().service
        while time.monotonic() < deadline:
            if all(service.get_execution(i, with_calls=False)["status"] not in ("running", "waiting") for i in exec_ids):
                return
            time.sleep(0.1)


def local_services(home: str) -> dict[str, Any]:
    """The warm local Ray and the local server of ``home`` (for ``kitaru status``); never starts Ray."""
    from kitaru.runtime import warm as warm_ray

    warm = warm_ray.status(home)
    server_state = _server_status(home)
    return {
        "ray": warm.to_dict() if warm else None,
        "server": server_state.to_dict() if server_state is not None and server_state.running else None,
    }


def print_local_services(data: dict[str, Any]) -> None:
    """The lines ``kitaru status`` and ``kitaru up`` print about the local services."""
    ray = data.get("ray")
    if ray:
        idle = "until `kitaru down`" if ray["idle_minutes"] is None else f"stops after {ray['idle_minutes']:g} idle minutes"
        console().print(f"ray:       {ray['gcs_address']} (pid {ray['pid']}, {idle})\ndashboard: {ray['dashboard_url']}")
    else:
        console().print("ray:       not up (a run starts one; `kitaru up` keeps one)")
    server = data.get("server")
    if server:
        console().print(f"server:    {server['url']} (pid {server['pid']}); UI {server['url']}/executions")


def _server_status(home: str) -> Any:
    """The local server's status, or ``None`` without the server extra."""
    try:
        from kitaru_server import process
    except ImportError:
        return None
    return process.status(home=home)
