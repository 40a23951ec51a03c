"""Errors the service layer raises: Kitaru's own tree, so embedded and HTTP clients see the same."""

from kitaru.errors import KitaruConflictError as ConflictError
from kitaru.errors import KitaruNotFoundError as NotFoundError
from kitaru.errors import KitaruStateError as StateError

__all__ = ["ConflictError", "NotFoundError", "StateError"]
