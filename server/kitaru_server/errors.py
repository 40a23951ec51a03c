"""Errors the service layer raises: Kitaru's own tree, so embedded and HTTP clients see the same."""

from kitaru.errors import KitaruConflictError as ConflictError
from kitaru.errors import KitaruNotFoundError as NotFoundError
from kitaru.errors import KitaruStateError as StateError
from kitaru.errors import KitaruUsageError

__all__ = ["ConflictError", "NotFoundError", "PermissionDeniedError", "StateError"]


class PermissionDeniedError(KitaruUsageError):
    """The caller's key may not do this (HTTP 403); the message names the permission it lacks."""
