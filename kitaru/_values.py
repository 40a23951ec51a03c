"""Two helpers the call path shares: a walk over nested values and the ``module:qualname`` resolver."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["map_nested", "resolve_path"]


def map_nested(value: Any, leaf: Callable[[Any], Any], *, tuples_as_lists: bool = False) -> Any:
    """``value`` with ``leaf`` applied to everything that is not a plain list, tuple or dict inside it.

    Containers are rebuilt with their own type (tuples as lists with ``tuples_as_lists``, as JSON has
    them); subclasses of them are leaves, as Ray and the serializers see them.
    """
    kind = type(value)
    if kind is list or kind is tuple:
        items = [map_nested(item, leaf, tuples_as_lists=tuples_as_lists) for item in value]
        return items if kind is list or tuples_as_lists else tuple(items)
    if kind is dict:
        return {key: map_nested(item, leaf, tuples_as_lists=tuples_as_lists) for key, item in value.items()}
    return leaf(value)


def resolve_path(path: str) -> Any:
    """The object ``module:qualname`` names (``qualname`` may be dotted).

    Raises:
        ImportError: the module cannot be imported.
        AttributeError: the module has no such attribute.
    """
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else ():
        target = getattr(target, part)
    return target
