"""Running the server in the background: ``kitaru server start|stop|status``.

``start`` migrates the database, creates the first admin key when auth is on
and no admin key exists (written to ``KITARU_HOME/server.key``, mode 0600, and
returned once), then launches ``uvicorn`` with ``--workers N`` as a detached
process. Its pid goes to ``KITARU_HOME/server.pid``, its settings to
``KITARU_HOME/server.json``, its output to ``KITARU_HOME/server.log``.

Auth: off only on a loopback address with an explicit ``--no-auth``; a server
bound to any other address always requires API keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kitaru.errors import KitaruStateError, KitaruUsageError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ServerStatus", "auth_required", "is_loopback", "start", "status", "stop"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8383
STATE_FILE = "server.json"
PID_FILE = "server.pid"
LOG_FILE = "server.log"
KEY_FILE = "server.key"


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    """What ``kitaru server status`` shows (and ``start`` returns, with ``admin_key`` when it made one)."""

    running: bool
    pid: int | None = None
    url: str | None = None
    host: str | None = None
    port: int | None = None
    workers: int | None = None
    auth: bool | None = None
    database_url: str | None = None
    started_at: float | None = None
    log_file: str | None = None
    key_file: str | None = None
    admin_key: str | None = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_required(host: str, no_auth: bool) -> bool:
    """Auth is on unless the server is bound to loopback and started with ``--no-auth``.

    Raises:
        KitaruUsageError: ``--no-auth`` on a non-loopback address.
    """
    if no_auth and not is_loopback(host):
        raise KitaruUsageError(
            f"--no-auth is only allowed on a loopback address, not {host!r}: a server others can reach "
            "always requires API keys; drop --no-auth or bind to 127.0.0.1."
        )
    return not no_auth


def start(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    no_auth: bool = False,
    home: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
    storage_url: str | None = None,
    max_body_bytes: int | None = None,
    timeout: float = 60.0,
) -> ServerStatus:
    """Start the server in the background and return once it answers ``/health``.

    Args:
        host: The address to bind (``0.0.0.0`` for every interface: auth is then always on).
        port: The port (default 8383).
        workers: uvicorn worker processes.
        no_auth: Serve without API keys (loopback only).
        home: ``KITARU_HOME`` (default: the configured one).
        database_url: The database (default: ``KITARU_SERVER_DATABASE_URL``, else SQLite under the home).
        storage_url: The ``default`` stack's storage: executions on it must store there (default:
            ``KITARU_SERVER_STORAGE_URL``, else the configured storage, ``storage/`` under the home).
        max_body_bytes: The largest request body (default ``KITARU_SERVER_MAX_BODY_BYTES``, else 10 MiB).

    Raises:
        KitaruStateError: a server started from this home is still running.
        KitaruUsageError: bad options.
        KitaruBackendError: the server exited or did not answer in time (the message quotes its log).
    """
    if workers < 1 or not 0 < port < 65536:
        raise KitaruUsageError(f"--workers must be at least 1 and --port between 1 and 65535 (got {workers} and {port}).")
    auth = auth_required(host, no_auth)
    home_dir, database_url = _home_and_database(home, database_url)
    current = status(home=home_dir)
    if current.running:
        raise KitaruStateError(
            f"a Kitaru server from this KITARU_HOME already runs (pid {current.pid}) at {current.url}; "
            "stop it with `kitaru server stop` first."
        )
    _check_port_free(host, port)
    from kitaru_server.service import service_for

    service = service_for(database_url)  # migrates now, once, rather than racing in every worker
    admin_key = _bootstrap_key(service, home_dir) if auth else None
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    log_file = home_dir / LOG_FILE
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "kitaru_server.api:app_from_environment",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "info",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]
    env = {
        **os.environ,
        "KITARU_SERVER_DATABASE_URL": database_url,
        "KITARU_SERVER_AUTH": "1" if auth else "0",
        "KITARU_SERVER_STORAGE_URL": _storage_url(storage_url, home),
    }
    if max_body_bytes is not None:
        env["KITARU_SERVER_MAX_BODY_BYTES"] = str(max_body_bytes)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=home_dir
        )
    state = ServerStatus(
        running=True,
        pid=process.pid,
        url=url,
        host=host,
        port=port,
        workers=workers,
        auth=auth,
        database_url=_without_password(database_url),
        started_at=time.time(),
        log_file=str(log_file),
        key_file=str(home_dir / KEY_FILE),
    )
    (home_dir / STATE_FILE).write_text(
        json.dumps({k: v for k, v in state.to_dict().items() if k not in ("running", "admin_key")})
    )
    (home_dir / PID_FILE).write_text(f"{process.pid}\n")
    try:
        _wait_healthy(process, url, log_file, timeout)
    except BaseException:
        _signal_group(process.pid, signal.SIGKILL)  # a server that did not come up is not left behind
        process.wait()
        _forget(home_dir)
        raise
    return dataclasses.replace(state, admin_key=admin_key)


def status(*, home: str | os.PathLike[str] | None = None) -> ServerStatus:
    """The server started from this home: running or not (a stale state file reads as not running)."""
    home_dir, _ = _home_and_database(home, None)
    try:
        state = json.loads((home_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return ServerStatus(running=False, log_file=str(home_dir / LOG_FILE))
    fields = {f.name for f in dataclasses.fields(ServerStatus)} - {"running", "admin_key"}
    return ServerStatus(running=_alive(state.get("pid")), **{k: v for k, v in state.items() if k in fields})


def stop(*, home: str | os.PathLike[str] | None = None, timeout: float = 15.0) -> ServerStatus:
    """Stop the server started from this home (SIGTERM to its process group, SIGKILL after ``timeout``); returns what ran.

    Raises:
        KitaruStateError: no server from this home is running.
    """
    home_dir, _ = _home_and_database(home, None)
    current = status(home=home_dir)
    if not current.running or current.pid is None:
        _forget(home_dir)
        raise KitaruStateError("no Kitaru server from this KITARU_HOME is running; start one with `kitaru server start`.")
    _signal_group(current.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(current.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(current.pid):
        _signal_group(current.pid, signal.SIGKILL)
    _forget(home_dir)
    return dataclasses.replace(current, running=False)


def _home_and_database(home: str | os.PathLike[str] | None, database_url: str | None) -> tuple[Path, str]:
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    home_dir = Path(home).expanduser().resolve() if home is not None else Path(settings.home)
    home_dir.mkdir(parents=True, exist_ok=True)
    database_url = database_url or os.environ.get("KITARU_SERVER_DATABASE_URL") or f"sqlite:///{home_dir / 'kitaru.db'}"
    return home_dir, database_url


def _storage_url(given: str | None, home: str | os.PathLike[str] | None) -> str:
    """The default stack's storage: given, else the environment's, else this home's configured storage."""
    from kitaru.config import resolve_settings

    if given or os.environ.get("KITARU_SERVER_STORAGE_URL"):
        return given or os.environ["KITARU_SERVER_STORAGE_URL"]
    if home is not None:
        return (Path(home).expanduser().resolve() / "storage").as_uri()
    return resolve_settings().storage_url


def _without_password(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


def _forget(home_dir: Path) -> None:
    for name in (STATE_FILE, PID_FILE):
        (home_dir / name).unlink(missing_ok=True)


def _bootstrap_key(service: Any, home_dir: Path) -> str | None:
    """A new admin key when the database has none (written to ``server.key``, 0600); ``None`` otherwise."""
    created = service.bootstrap_admin_key()
    if created is None:
        return None
    path = home_dir / KEY_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(created["key"] + "\n")
    return created["key"]


def _check_port_free(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        # as uvicorn binds: connections a crashed server left in TIME_WAIT must not hold the port for a minute
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise KitaruUsageError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); stop what uses it or pick another port with --port."
            ) from None


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log_file: Path, timeout: float) -> None:
    import httpx

    from kitaru.errors import KitaruBackendError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise KitaruBackendError(
                f"the server exited at start (code {process.returncode}): {_tail(log_file)}; "
                "fix the cause (a port in use?) and start it again."
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200 and process.poll() is None:
                return
        time.sleep(0.1)
    raise KitaruBackendError(f"the server did not answer {url}/health within {timeout:g} s: {_tail(log_file)}; see {log_file}.")


def _tail(log_file: Path) -> str:
    try:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-3:]) or "(empty log)"


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):  # our own child that exited: reap it, it is not running
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
