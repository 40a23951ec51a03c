"""Configuration: where each setting comes from, resolved when a run starts.

Precedence, lowest to highest: built-in defaults, the user config file
(``kitaru login``, ``kitaru stack use --user``: see :func:`user_config_path`),
``[tool.kitaru]`` in the nearest ``pyproject.toml``, ``.kitaru/config.yaml`` of
the project, the ``KITARU_*`` environment, then :func:`configure`. Decorator and
``.run()`` arguments are applied on top by the flow itself; the active stack's
storage is applied when a run starts (see :mod:`kitaru._stacks`).

Nothing here runs at import time; a Ray worker never reads its own
environment (the resolved :class:`Settings` travel with each task).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = [
    "Settings",
    "configure",
    "connect",
    "find_project_dir",
    "read_user_config",
    "reset_configuration",
    "resolve_settings",
    "user_config_path",
    "write_project_config",
    "write_user_config",
]

_PROJECT_KEYS = ("cache", "retries", "stack", "storage_url", "checkpoint_returns")
_USER_KEYS = ("server_url", "api_key", "stack")
_configured: dict[str, Any] = {}
_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective configuration of one run (or one client)."""

    home: str
    storage_url: str
    storage_options: dict[str, Any]
    database_url: str
    server_url: str | None
    api_key: str | None
    stack: str | None
    cache: bool
    retries: int
    ray_address: str | None
    lease_seconds: float
    log_level: str
    default_model: str | None
    llm_mock_response: str | None = None
    llm_cost: bool = True
    checkpoint_returns: str = "value"
    image: dict[str, Any] | None = None
    sources: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def service_url(self) -> str:
        """Where executions are recorded: the server's URL in remote mode, else the embedded database."""
        return self.server_url or self.database_url

    def for_workers(self) -> dict[str, Any]:
        """The part of the settings a Ray task or the runtime actor needs."""
        return {
            "home": self.home,
            "storage_url": self.storage_url,
            "storage_options": self.storage_options,
            "service_url": self.service_url,
            "api_key": self.api_key,
            "log_level": self.log_level,
            "default_model": self.default_model,
            "llm_mock_response": self.llm_mock_response,
            "llm_cost": self.llm_cost,
            "checkpoint_returns": self.checkpoint_returns,
        }


def configure(
    *,
    stack: str | None = None,
    cache: bool | None = None,
    retries: int | None = None,
    home: str | os.PathLike[str] | None = None,
    storage_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
    ray_address: str | None = None,
    lease_seconds: float | None = None,
    default_model: str | None = None,
    checkpoint_returns: str | None = None,
    image: Any = None,
    llm_estimated_costs: bool | str | None = None,
) -> None:
    """Set process-wide defaults; they win over the environment and project files.

    Only the arguments given change; pass them again to change them back.

    Args:
        checkpoint_returns: ``"value"`` (default: a checkpoint call returns its value) or
            ``"handle"`` (it returns the committed call's handle, ``.load()`` gives the value, as in Kitaru 0.21).
        image: An :class:`~kitaru.ImageSettings` (or its dict, or an image name) recorded on executions
            for container backends.
        llm_estimated_costs: Record a cost estimate with each ``llm()`` call: ``"auto"``/``True`` or
            ``"off"``/``False`` (``KITARU_LLM_COST``; ``llm_estimated_costs`` in ``[tool.kitaru]``).
    """
    if checkpoint_returns is not None:
        _check_checkpoint_returns(checkpoint_returns, "checkpoint_returns=")
    if image is not None:
        from kitaru.images import image_spec

        image = image_spec(image)
    given = {
        "stack": stack,
        "cache": cache,
        "retries": retries,
        "home": os.fspath(home) if home is not None else None,
        "storage_url": storage_url,
        "storage_options": storage_options,
        "ray_address": ray_address,
        "lease_seconds": lease_seconds,
        "default_model": default_model,
        "checkpoint_returns": checkpoint_returns,
        "image": image,
        "llm_cost": None if llm_estimated_costs is None else _estimated_costs(llm_estimated_costs),
    }
    with _lock:
        _configured.update({k: v for k, v in given.items() if v is not None})


def reset_configuration() -> None:
    """Forget everything set by :func:`configure` (used by tests)."""
    with _lock:
        _configured.clear()


def connect(server_url: str, *, api_key: str | None = None) -> None:
    """Point this process at a Kitaru server (remote mode)."""
    with _lock:
        _configured["server_url"] = server_url
        if api_key is not None:
            _configured["api_key"] = api_key


def resolve_settings(cwd: str | os.PathLike[str] | None = None) -> Settings:
    """Resolve the effective settings from every source, recording each value's source."""
    start = Path(cwd or os.getcwd()).resolve()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(key: str, value: Any, source: str) -> None:
        values[key] = value
        sources[key] = source

    for key, value in {"cache": True, "retries": 0, "lease_seconds": 30.0, "log_level": "INFO"}.items():
        put(key, value, "default")

    user_config = user_config_path()
    for key, value in read_user_config().items():
        put(key, value, f"user config ({user_config})")

    pyproject = _find_upwards(start, "pyproject.toml")
    if pyproject is not None:
        for key, value in _read_pyproject(pyproject).items():
            put(key, value, f"{pyproject} [tool.kitaru]")

    project_dir = _find_upwards(start, ".kitaru")
    if project_dir is not None and project_dir.is_dir():
        put("home", str(project_dir), f"project ({project_dir})")
        config_file = project_dir / "config.yaml"
        if config_file.is_file():
            for key, value in _read_yaml(config_file).items():
                put(key, value, str(config_file))

    for key, value in _read_environment().items():
        put(key, value, f"environment KITARU_{key.upper()}")

    with _lock:
        for key, value in _configured.items():
            put(key, value, "configure()")

    if "home" not in values:
        put("home", str(Path.home() / ".kitaru"), "default")
    home = str(Path(values["home"]).expanduser().resolve())
    if "storage_url" not in values:
        put("storage_url", Path(home, "storage").as_uri(), "default (under KITARU_HOME)")
    return Settings(
        home=home,
        storage_url=values["storage_url"],
        storage_options=values.get("storage_options", {}),
        database_url=f"sqlite:///{Path(home, 'kitaru.db')}",
        server_url=values.get("server_url"),
        api_key=values.get("api_key"),
        stack=values.get("stack"),
        cache=bool(values["cache"]),
        retries=int(values["retries"]),
        ray_address=values.get("ray_address"),
        lease_seconds=float(values["lease_seconds"]),
        log_level=str(values["log_level"]).upper(),
        default_model=values.get("default_model"),
        llm_mock_response=values.get("llm_mock_response"),
        llm_cost=bool(values.get("llm_cost", True)),
        checkpoint_returns=_check_checkpoint_returns(
            values.get("checkpoint_returns", "value"), sources.get("checkpoint_returns", "")
        ),
        image=values.get("image"),
        sources=sources,
    )


def user_config_path() -> Path:
    """The user config file: ``$KITARU_CONFIG_DIR/config.yaml``, else ``$KITARU_HOME/user-config.yaml``
    when ``KITARU_HOME`` is set (so an isolated home has its own login), else ``~/.config/kitaru/config.yaml``
    (``$XDG_CONFIG_HOME`` respected)."""
    env = os.environ
    if env.get("KITARU_CONFIG_DIR"):
        return Path(env["KITARU_CONFIG_DIR"]).expanduser() / "config.yaml"
    if env.get("KITARU_HOME"):
        return Path(env["KITARU_HOME"]).expanduser() / "user-config.yaml"
    base = Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "kitaru" / "config.yaml"


def read_user_config() -> dict[str, Any]:
    """The settings stored in the user config file (``server_url``, ``api_key``, ``stack``); empty when there is none."""
    path = user_config_path()
    if not path.is_file():
        return {}
    return {k: v for k, v in _load_yaml(path).items() if k in _USER_KEYS and v is not None}


def write_user_config(**changes: Any) -> Path:
    """Set (or, with ``None``, remove) keys of the user config file; it is private to the user (mode 0600)."""
    path = user_config_path()
    data = _load_yaml(path) if path.is_file() else {}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    _write_yaml(path, data, private=True)
    return path


def write_project_config(project_dir: Path, **changes: Any) -> Path:
    """Set (or, with ``None``, remove) keys of ``<project_dir>/config.yaml``, keeping the others."""
    path = project_dir / "config.yaml"
    data = _load_yaml(path) if path.is_file() else {}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    _write_yaml(path, data, private=False)
    return path


def find_project_dir(cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """The ``.kitaru/`` directory of the project around ``cwd`` (made by ``kitaru init``), if any."""
    found = _find_upwards(Path(cwd or os.getcwd()).resolve(), ".kitaru")
    return found if found is not None and found.is_dir() else None


def _read_environment() -> dict[str, Any]:
    env = os.environ
    found: dict[str, Any] = {}
    for key in ("home", "server_url", "api_key", "stack", "ray_address", "default_model", "storage_url", "llm_mock_response"):
        value = env.get(f"KITARU_{key.upper()}")
        if value:
            found[key] = value
    if "KITARU_CACHE" in env:
        found["cache"] = _parse_bool(env["KITARU_CACHE"], "KITARU_CACHE")
    if "KITARU_RETRIES" in env:
        found["retries"] = _parse_int(env["KITARU_RETRIES"], "KITARU_RETRIES")
    if "KITARU_LEASE_SECONDS" in env:
        found["lease_seconds"] = _parse_float(env["KITARU_LEASE_SECONDS"], "KITARU_LEASE_SECONDS")
    if env.get("KITARU_CHECKPOINT_RETURNS"):
        found["checkpoint_returns"] = env["KITARU_CHECKPOINT_RETURNS"]
    if "KITARU_LLM_COST" in env:
        found["llm_cost"] = _parse_bool(env["KITARU_LLM_COST"], "KITARU_LLM_COST")
    if "KITARU_LOG_LEVEL" in env:
        found["log_level"] = env["KITARU_LOG_LEVEL"]
    if "KITARU_STORAGE_OPTIONS" in env:
        try:
            found["storage_options"] = json.loads(env["KITARU_STORAGE_OPTIONS"])
        except json.JSONDecodeError as exc:
            raise KitaruUsageError(
                f"KITARU_STORAGE_OPTIONS is not valid JSON ({exc}); "
                'set it to a JSON object such as \'{"endpoint_url": "http://127.0.0.1:9000"}\'.'
            ) from None
    return found


def _parse_bool(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise KitaruUsageError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def _parse_int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise KitaruUsageError(f"{name}={raw!r} is not an integer; set it to a whole number such as 2.") from None


def _parse_float(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise KitaruUsageError(f"{name}={raw!r} is not a number; set it to seconds such as 30.") from None


def _find_upwards(start: Path, name: str) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / name
        if candidate.exists():
            return candidate
    return None


def _estimated_costs(value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("auto", "on"):
        return True
    if value == "off":
        return False
    from kitaru.errors import KitaruUsageError

    raise KitaruUsageError(f"llm_estimated_costs must be 'auto', 'off' or a bool, not {value!r}.")


def _check_checkpoint_returns(value: Any, where: str) -> str:
    if value not in ("value", "handle"):
        from kitaru.errors import KitaruUsageError

        raise KitaruUsageError(f"checkpoint_returns ({where}) must be 'value' or 'handle', not {value!r}.")
    return str(value)


# [tool.kitaru] by file, with the modification time and size it was read at: every run resolves the settings,
# and parsing a project's whole pyproject.toml costs milliseconds.
_pyproject_tables: dict[str, tuple[tuple[str, int, int], dict[str, Any]]] = {}


def _read_pyproject(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        stat = path.stat()
        stamp = (str(path), stat.st_mtime_ns, stat.st_size)
        cached = _pyproject_tables.get(stamp[0])
        if cached is not None and cached[0] == stamp:
            table = cached[1]
        else:
            table = tomllib.loads(path.read_text()).get("tool", {}).get("kitaru", {})
            _pyproject_tables[stamp[0]] = (stamp, table)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    found = {k: v for k, v in table.items() if k in _PROJECT_KEYS}
    if "llm_estimated_costs" in table:
        found["llm_cost"] = _estimated_costs(table["llm_estimated_costs"])
    return found


def _read_yaml(path: Path) -> dict[str, Any]:
    return {k: v for k, v in _load_yaml(path).items() if k in _PROJECT_KEYS or k == "storage_options"}


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KitaruUsageError(f"{path} is not valid YAML ({exc}); fix or delete it.") from None
    if not isinstance(data, dict):
        raise KitaruUsageError(f"{path} must hold a mapping of settings (key: value); fix or delete it.")
    return data


def _write_yaml(path: Path, data: dict[str, Any], *, private: bool) -> None:
    """Write atomically (temp file + rename); ``private`` files are readable by their owner only."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(data, handle, sort_keys=True)
    os.replace(tmp, path)
