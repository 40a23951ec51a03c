"""The Kitaru server: a service layer over SQLAlchemy that embedded mode calls in-process.

It depends on ``kitaru.contracts`` and ``kitaru.errors`` only (an import contract holds it);
whatever starts it hands it the rest (a launcher for the UI's actions).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitaru_server.service import KitaruService, service_for

__all__ = ["KitaruService", "__version__", "service_for"]


def __getattr__(name: str) -> Any:
    # Imported on first use: a process reading through kitaru_server.sqlite_reads never needs SQLAlchemy.
    if name in ("KitaruService", "service_for"):
        from kitaru_server import service

        return getattr(service, name)
    # Looked up on first use: reading package metadata costs every embedded driver's start-up otherwise.
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("kitaru")
        except metadata.PackageNotFoundError:  # run from a source tree that was never installed
            version = "0+unknown"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
