"""The Kitaru server: a service layer over SQLAlchemy that embedded mode calls in-process.

It depends on ``kitaru.contracts`` and ``kitaru.errors`` only (an import contract holds it);
whatever starts it hands it the rest (a launcher for the UI's actions).
"""

from importlib import metadata

from kitaru_server.service import KitaruService, service_for

__all__ = ["KitaruService", "__version__", "service_for"]

try:
    __version__ = metadata.version("kitaru")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
