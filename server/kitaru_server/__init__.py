"""The Kitaru server: a service layer over SQLAlchemy that embedded mode calls in-process."""

from kitaru_server.service import KitaruService, service_for

__all__ = ["KitaruService", "service_for"]
