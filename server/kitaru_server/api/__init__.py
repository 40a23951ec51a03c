"""The Kitaru server's HTTP API: a thin FastAPI layer over :class:`~kitaru_server.KitaruService` (``/api/v1``)."""

from kitaru_server.api.app import API_PREFIX, app_from_environment, create_app

__all__ = ["API_PREFIX", "app_from_environment", "create_app"]
