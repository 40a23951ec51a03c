"""The warm local Ray of a ``KITARU_HOME``: one long-lived Ray head (with its dashboard) that runs join.

``kitaru up`` starts it and keeps it until ``kitaru down``. When none is up, the
first run starts one in the background and joins it, like a build daemon: that
one stops itself once no driver has used it for ``KITARU_WARM_IDLE_MINUTES``
(default 15). ``KITARU_WARM_RAY=0`` keeps a private ``ray.init`` per process.

A supervisor process (``python -m kitaru.runtime.warm``) leads its own session;
``ray start --head --block`` runs in its process group, so the whole node (GCS,
raylet, dashboard, workers) stops with that group and never with another Ray on
the machine. The head's address is recorded in ``KITARU_HOME/warm/ray.json``:
runs join only the Ray recorded for their home, never an unrelated cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kitaru.errors import KitaruRuntimeError, KitaruUsageError

__all__ = [
    "WarmRay",
    "enabled",
    "idle_minutes",
    "join_or_start",
    "joined_jobs",
    "start",
    "status",
    "stop",
    "use_auth_mode",
]

STATE_FILE = "ray.json"
LOG_FILE = "ray.log"
DEFAULT_IDLE_MINUTES = 15.0
START_TIMEOUT_SECONDS = 180.0
_STOP_GRACE_SECONDS = 5.0
_FIRST_DRIVER_GRACE_SECONDS = 120.0
_WORKER_PORTS = (10002, 19999)  # Ray's default range for worker processes
_WORKERS_PER_CPU = 10  # checkpoints reserve a tenth of a core: keep a fan-out's workers warm
_AUTH_MODE = "RAY_AUTH_MODE"


@dataclasses.dataclass(frozen=True)
class WarmRay:
    """A warm local Ray as recorded in its home.

    Attributes:
        pid: The supervisor process; it leads the process group of the whole node.
        gcs_address: What ``ray.init(address=...)`` joins (``host:port``).
        dashboard_url: The Ray dashboard.
        idle_minutes: Stops itself after this long without a driver; ``None``: kept until ``kitaru down``.
        origin: ``"up"`` (``kitaru up``) or ``"run"`` (started by the first run).
        server_url: The local Kitaru server that ``kitaru up`` started with it, if any.
        auth_mode: Ray's ``RAY_AUTH_MODE`` of the head (``"token"`` or ``"disabled"``): what joining it takes.
    """

    pid: int
    gcs_address: str
    dashboard_url: str | None
    started_at: float
    idle_minutes: float | None
    origin: str
    log_file: str
    server_url: str | None = None
    server_pid: int | None = None
    auth_mode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def enabled() -> bool:
    """Whether runs use a warm local Ray (``KITARU_WARM_RAY``, default on)."""
    raw = os.environ.get("KITARU_WARM_RAY", "1").strip().lower()
    if raw in ("1", "true", "yes", "on", ""):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise KitaruUsageError(f"KITARU_WARM_RAY must be 1 or 0, not {raw!r}.")


def idle_minutes() -> float:
    """``KITARU_WARM_IDLE_MINUTES``: how long an auto-started warm Ray waits without a driver before it stops."""
    raw = os.environ.get("KITARU_WARM_IDLE_MINUTES")
    if raw is None:
        return DEFAULT_IDLE_MINUTES
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise KitaruUsageError(f"KITARU_WARM_IDLE_MINUTES must be a positive number of minutes, not {raw!r}.")
    return value


def status(home: str | os.PathLike[str]) -> WarmRay | None:
    """The warm Ray of ``home`` when it is up (its supervisor alive and its GCS answering); never starts Ray."""
    try:
        state = json.loads((_dir(home) / STATE_FILE).read_text())
        warm = WarmRay(**state)
    except (OSError, ValueError, TypeError):
        return None
    if not _alive(warm.pid) or not _answers(warm.gcs_address):
        return None
    return warm


def join_or_start(home: str | os.PathLike[str]) -> WarmRay | None:
    """The warm Ray a run of ``home`` should join, started in the background when none is up; ``None`` when disabled."""
    if not enabled():
        return None
    found = status(home)
    if found is not None:
        return found
    with _start_lock(home):  # concurrent first runs start one, not several
        found = status(home)
        if found is not None:
            return found
        return start(home, idle=idle_minutes(), origin="run")


def start(
    home: str | os.PathLike[str],
    *,
    port: int | None = None,
    dashboard_port: int | None = None,
    num_cpus: int | None = None,
    idle: float | None = None,
    origin: str = "up",
    timeout: float = START_TIMEOUT_SECONDS,
) -> WarmRay:
    """Start the warm Ray of ``home`` and return once runs can join it.

    Args:
        port: The GCS port (default: a free one).
        dashboard_port: The dashboard's port (default: a free one).
        idle: Minutes without a driver before it stops itself; ``None`` keeps it until :func:`stop`.

    Raises:
        KitaruUsageError: a port it needs is taken (the message names the process holding it).
        KitaruRuntimeError: the head did not come up (the message quotes its log).
    """
    for wanted in (port, dashboard_port):
        if wanted is not None:
            if _WORKER_PORTS[0] <= wanted <= _WORKER_PORTS[1]:
                raise KitaruUsageError(
                    f"port {wanted} is in the range Ray keeps for its workers "
                    f"({_WORKER_PORTS[0]}-{_WORKER_PORTS[1]}); choose another."
                )
            check_port_free(wanted)
    directory = _dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE_FILE).unlink(missing_ok=True)
    log = directory / LOG_FILE
    command = [sys.executable, "-m", "kitaru.runtime.warm", "--home", str(home), "--origin", origin]
    for flag, value in (("--port", port), ("--dashboard-port", dashboard_port), ("--num-cpus", num_cpus), ("--idle", idle)):
        if value is not None:
            command += [flag, str(value)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + timeout
    while True:
        found = status(home)
        if found is not None and found.pid == process.pid:
            return found
        if process.poll() is not None:
            raise KitaruRuntimeError(f"the warm local Ray did not start: {_last_error(log)}")
        if time.monotonic() > deadline:
            _kill_group(process.pid)
            raise KitaruRuntimeError(f"the warm local Ray did not start within {timeout:.0f} s; see {log}.")
        time.sleep(0.1)


def stop(home: str | os.PathLike[str], *, timeout: float = 30.0) -> WarmRay | None:
    """Stop the warm Ray of ``home`` (its whole process group and its workers); returns what ran, ``None`` when nothing was up.

    Drivers joined to it notice within a second or two: they leave their executions ``interrupted`` and exit.
    """
    directory = _dir(home)
    try:
        warm = WarmRay(**json.loads((directory / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    running = _alive(warm.pid)
    if running:
        started = _descendants(warm.pid)
        _signal_group(warm.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(warm.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_group(warm.pid)
        _kill_all(started)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return warm if running else None


def joined_jobs(warm: WarmRay) -> list[str]:
    """The Ray job ids (hex) of the drivers joined to ``warm`` now; empty when its head does not answer."""
    import ray

    use_auth_mode(warm.auth_mode)
    return _live_jobs(ray._raylet.GcsClient(address=warm.gcs_address)) or []


def use_auth_mode(mode: str | None) -> None:
    """Make this process speak ``RAY_AUTH_MODE=mode`` to Ray, as joining a head started with it takes.

    Ray sends its token only in token mode, and a process joining an explicit address never
    turns it on by itself. ``None`` (a head recorded before the mode was) leaves the process as it is.
    """
    if mode is None or os.environ.get(_AUTH_MODE) == mode:
        return
    os.environ[_AUTH_MODE] = mode
    if "ray" in sys.modules:
        from ray._raylet import Config

        Config.initialize("")  # Ray caches the mode with its config: re-read it, as Ray does when it turns token auth on


def _head_auth_mode() -> str:
    """The ``RAY_AUTH_MODE`` a head started here gets: the environment's, else what ``ray start --head`` picks.

    That is token auth when a token is at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``, which any earlier local ``ray.init`` writes), else none.
    """
    configured = os.environ.get(_AUTH_MODE, "").strip().lower()
    if configured:
        return configured
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return "token" if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file() else "disabled"


def check_port_free(port: int) -> None:
    """Raise a one-line :class:`KitaruUsageError` naming the process that listens on ``port``, if one does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
            return
        except OSError:
            pass
    holder = _listener(port)
    if holder and _is_ray(holder[1]):
        raise KitaruUsageError(
            f"port {port} is taken by a Ray process ({holder[1]}, pid {holder[0]}); to use that Ray, set "
            f"KITARU_RAY_ADDRESS=127.0.0.1:{port} (the GCS port), or choose other ports with --port/--dashboard-port."
        )
    who = f"{holder[1]} (pid {holder[0]})" if holder else "another process"
    raise KitaruUsageError(
        f"port {port} is taken by {who}; choose other ports with --port/--dashboard-port "
        "(or point Kitaru at a running Ray with KITARU_RAY_ADDRESS)."
    )


# --- the supervisor process --------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    """Run the head in this process group, record it, and stop it when told to or when idle."""
    import ray

    auth_mode = _head_auth_mode()
    use_auth_mode(auth_mode)  # the head (started below with this environment) and this process's own GCS client alike
    ports = {name: _free_port() for name in _AUXILIARY_PORTS}
    gcs_port = args.port or _free_port()
    dashboard_port = args.dashboard_port or _free_port()
    cpus = args.num_cpus or os.cpu_count() or 1
    ray_cli = Path(sys.executable).with_name("ray")
    command = [
        str(ray_cli) if ray_cli.exists() else "ray",
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        f"--port={gcs_port}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--num-cpus={cpus}",
        *(f"--{name}={value}" for name, value in ports.items()),
    ]
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # Idle workers not yet bound to a job are handed to the next driver: keep a fan-out's worth.
        "RAY_enable_worker_prestart": os.environ.get("RAY_enable_worker_prestart", "1"),
        "RAY_num_workers_soft_limit": os.environ.get("RAY_num_workers_soft_limit", str(cpus * _WORKERS_PER_CPU)),
    }
    head = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    host = "127.0.0.1"
    gcs_address = f"{_node_ip()}:{gcs_port}"
    dashboard_url = f"http://{host}:{dashboard_port}"
    while not (_answers(gcs_address) and _http_ok(f"{dashboard_url}/api/version")):
        if head.poll() is not None:
            print(f"error: `ray start --head` exited with status {head.returncode}; see the lines above.", flush=True)
            return 1
        if stopping:
            return _shutdown(head, args.home)
        time.sleep(0.2)
    warm = WarmRay(
        pid=os.getpid(),
        gcs_address=gcs_address,
        dashboard_url=dashboard_url,
        started_at=time.time(),
        idle_minutes=args.idle,
        origin=args.origin,
        log_file=str(_dir(args.home) / LOG_FILE),
        auth_mode=auth_mode,
    )
    _write_state(args.home, warm)
    print(f"warm local Ray up: {gcs_address}, dashboard {dashboard_url}", flush=True)
    gcs = ray._raylet.GcsClient(address=f"{host}:{gcs_port}")
    last_used = time.monotonic()
    served = False  # the run that started it is still joining: never idle before its first driver
    poll = 1.0 if args.idle is None else min(30.0, max(args.idle * 60 / 10, 0.5))
    next_poll = time.monotonic()
    while not stopping and head.poll() is None:
        time.sleep(0.2)
        if args.idle is None or time.monotonic() < next_poll:
            continue
        next_poll = time.monotonic() + poll
        drivers = _drivers(gcs)
        if drivers != 0:
            last_used = time.monotonic()
            served = served or drivers is not None
        elif time.monotonic() - last_used >= (args.idle * 60 if served else max(args.idle * 60, _FIRST_DRIVER_GRACE_SECONDS)):
            print(f"no driver for {args.idle:g} minutes: stopping", flush=True)
            break
    return _shutdown(head, args.home)


_AUXILIARY_PORTS = (
    "ray-client-server-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "metrics-export-port",
    "runtime-env-agent-port",
)


def _drivers(gcs: Any) -> int | None:
    """Drivers connected now (``None`` when the GCS does not answer, which never counts as idle)."""
    jobs = _live_jobs(gcs)
    return None if jobs is None else len(jobs)


def _live_jobs(gcs: Any) -> list[str] | None:
    """The Ray job ids (hex) of the drivers connected now; ``None`` when the GCS does not answer."""
    try:
        jobs = gcs.get_all_job_info(skip_submission_job_info_field=True, skip_is_running_tasks_field=True, timeout=10)
    except Exception:  # noqa: BLE001 - a busy GCS is not an idle one
        return None
    return [
        job_id.hex()
        for job_id, job in jobs.items()
        if not job.is_dead and not job.config.ray_namespace.startswith("_ray_internal")
    ]


def _shutdown(head: subprocess.Popen[bytes], home: str) -> int:
    """Stop the node: SIGTERM to ``ray start``, then SIGKILL to the whole group (this process last)."""
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((_dir(home) / STATE_FILE).read_text())
        if state.get("pid") == os.getpid():
            (_dir(home) / STATE_FILE).unlink()
    started = _descendants(os.getpid())
    if head.poll() is None:
        head.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(_STOP_GRACE_SECONDS)
    sys.stdout.flush()
    _kill_all(started)
    os.killpg(os.getpgid(0), signal.SIGKILL)  # raylet's agents too; this process goes with them
    return 0


# --- helpers ------------------------------------------------------------------------------------


def _dir(home: str | os.PathLike[str]) -> Path:
    return Path(home).expanduser() / "warm"


@contextlib.contextmanager
def _start_lock(home: str | os.PathLike[str]) -> Iterator[None]:
    import fcntl

    directory = _dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "start.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_state(home: str | os.PathLike[str], warm: WarmRay) -> None:
    path = _dir(home) / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(warm.to_dict()))
    os.replace(temporary, path)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie has exited
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return True


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def _http_ok(url: str) -> bool:
    """Whether the dashboard serves ``url``; asking for Ray's token (401, token auth on by default) counts as serving."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 - a loopback URL we built
            return response.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code in (401, 403)
    except OSError:
        return False


def _node_ip() -> str:
    """The address Ray binds its node to (the machine's own interface, even when asked for loopback)."""
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _listener(port: int) -> tuple[int, str] | None:
    """The process listening on ``port`` (pid and command line), when this user may see it."""
    import psutil

    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port and connection.pid:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(connection.pid)
                return connection.pid, " ".join(process.cmdline())[:120] or process.name()
            return connection.pid, "unknown"
    return None


def _is_ray(command_line: str) -> bool:
    return any(name in command_line for name in ("gcs_server", "raylet", "ray/dashboard", "ray start", "ray.util.client"))


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_group(pid: int) -> None:
    _signal_group(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[Any]:
    """Every process ``pid`` started, directly or not (Ray's workers lead process groups of their own)."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill_all(processes: list[Any]) -> None:
    """SIGKILL those of ``processes`` still running (psutil checks each is the same process, not a reused pid)."""
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _last_error(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"see {log}"
    errors = [line.removeprefix("error:").strip() for line in lines if line.startswith("error:")]
    tail = errors[-1] if errors else (lines[-1] if lines else "no output")
    return f"{tail} (see {log})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kitaru.runtime.warm", description="Supervise a warm local Ray head.")
    parser.add_argument("--home", required=True)
    parser.add_argument("--origin", default="up", choices=("up", "run"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--dashboard-port", type=int)
    parser.add_argument("--num-cpus", type=int)
    parser.add_argument("--idle", type=float, help="minutes without a driver before stopping (default: never)")
    return parser


if __name__ == "__main__":
    sys.exit(_serve(_parser().parse_args()))
