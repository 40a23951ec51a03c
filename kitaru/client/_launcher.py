"""The launcher ``kitaru server start`` hands the server: its UI actions start drivers through the client.

A driver started for the UI records into the server's own database when that is
the embedded database of this machine's ``KITARU_HOME`` (no HTTP round trips),
else it reports to the server over HTTP with the caller's key. A local stack
runs on the ``process`` backend, on the server's machine — for a server bound
beyond loopback only where an admin allowed it (the stack's ``server_drivers``
backend option): otherwise API input could start code on the server's machine.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os

from kitaru.contracts.launch import ExecutionSpec, Submission
from kitaru.errors import KitaruUsageError

__all__ = ["BIND_HOST_ENV", "ClientLauncher", "server_launcher"]

BIND_HOST_ENV = "KITARU_SERVER_BIND_HOST"
_LOCAL_BACKENDS = (None, "default", "local", "process")


@dataclasses.dataclass(frozen=True)
class ClientLauncher:
    """A :class:`kitaru.contracts.launch.Launcher` over the client's launch path, for a server on ``database_url``."""

    database_url: str
    bind_host: str | None = None

    def launch(self, spec: ExecutionSpec) -> Submission:
        """Start ``spec`` detached on its stack's backend; returns once the driver holds the execution.

        Raises:
            KitaruUsageError: the stack runs drivers on this machine, and this server is bound beyond
                loopback without the stack's ``server_drivers`` option.
        """
        from kitaru.config import resolve_settings
        from kitaru.flow import submit

        self._refuse_local_drivers_beyond_loopback(spec.stack)
        settings = resolve_settings()
        if settings.database_url == self.database_url:  # the server's own embedded database: record there directly
            spec = dataclasses.replace(spec, server_url=None, api_key=None)
            settings = dataclasses.replace(settings, server_url=None, api_key=None)
        else:
            settings = dataclasses.replace(settings, server_url=spec.server_url, api_key=spec.api_key)
        handle = submit(dataclasses.replace(spec, home=settings.home), settings, detach=True)
        return handle.submission or Submission("process", spec.exec_id)

    def _refuse_local_drivers_beyond_loopback(self, stack_name: str | None) -> None:
        if self.bind_host is None or _is_loopback(self.bind_host):
            return
        from kitaru._service import connect_service

        backend, options = None, {}
        if stack_name and stack_name != "default":
            stack = connect_service(self.database_url, None).get_stack(stack_name)
            backend, options = stack["backend"], stack.get("backend_options") or {}
        if backend in _LOCAL_BACKENDS and not options.get("server_drivers"):
            raise KitaruUsageError(
                f"this server is bound to {self.bind_host}, beyond loopback, so it starts no driver on its own machine for "
                f"stack {stack_name or 'default'!r}; run it on a stack with a remote backend, or an admin sets the backend "
                "option server_drivers=true on a local stack meant for this."
            )


def server_launcher(database_url: str) -> ClientLauncher:
    """The launcher of a server on ``database_url`` (named by ``kitaru.client.SERVER_LAUNCHER``), for the address it binds."""
    return ClientLauncher(database_url, os.environ.get(BIND_HOST_ENV))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
