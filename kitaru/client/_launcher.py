"""The launcher ``kitaru server start`` hands the server: its UI actions start drivers through the client.

A driver started for the UI records into the server's own database when that is
the embedded database of this machine's ``KITARU_HOME`` (no HTTP round trips),
else it reports to the server over HTTP with the caller's key. A local stack
runs on the ``process`` backend, on the server's machine.
"""

from __future__ import annotations

import dataclasses

from kitaru.contracts.launch import ExecutionSpec, Submission

__all__ = ["ClientLauncher", "server_launcher"]


@dataclasses.dataclass(frozen=True)
class ClientLauncher:
    """A :class:`kitaru.contracts.launch.Launcher` over the client's launch path, for a server on ``database_url``."""

    database_url: str

    def launch(self, spec: ExecutionSpec) -> Submission:
        """Start ``spec`` detached on its stack's backend; returns once the driver holds the execution."""
        from kitaru.config import resolve_settings
        from kitaru.flow import submit

        settings = resolve_settings()
        if settings.database_url == self.database_url:  # the server's own embedded database: record there directly
            spec = dataclasses.replace(spec, server_url=None, api_key=None)
            settings = dataclasses.replace(settings, server_url=None, api_key=None)
        else:
            settings = dataclasses.replace(settings, server_url=spec.server_url, api_key=spec.api_key)
        handle = submit(dataclasses.replace(spec, home=settings.home), settings, detach=True)
        return handle.submission or Submission("process", spec.exec_id)


def server_launcher(database_url: str) -> ClientLauncher:
    """The launcher of a server on ``database_url`` (named by ``kitaru.client.SERVER_LAUNCHER``)."""
    return ClientLauncher(database_url)
