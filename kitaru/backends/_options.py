"""Declared backend options: what ``--backend-option KEY=VALUE`` accepts for each backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = ["BackendOption", "validate_options"]

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "dict": (dict,), "list": (list,)}


@dataclasses.dataclass(frozen=True)
class BackendOption:
    """One option of a backend.

    Attributes:
        name: The key in the stack's ``backend_options``.
        type: ``str``, ``int``, ``bool``, ``dict`` or ``list``.
        help: One line for ``--help`` and the docs.
        default: Used when the stack does not set it.
        required: The stack must set it.
        choices: The allowed values, where they are a fixed set.
    """

    name: str
    type: str
    help: str
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        """``name (type, default X): help`` for listings."""
        facts = [self.type, "required" if self.required else f"default {self.default!r}"]
        if self.choices:
            facts.append("one of " + "|".join(map(str, self.choices)))
        return f"{self.name} ({', '.join(facts)}): {self.help}"


def validate_options(backend: str, declared: Sequence[BackendOption], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``declared``, with defaults filled in (see ``validate_backend_options``)."""
    known = {option.name: option for option in declared}
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise KitaruUsageError(f"the {backend} backend has no option {', '.join(unknown)}; its options: {listed}.")
    checked: dict[str, Any] = {}
    for name, option in known.items():
        if name not in options or options[name] is None:
            if option.required:
                raise KitaruUsageError(f"the {backend} backend needs --backend-option {name}=VALUE ({option.help}).")
            checked[name] = option.default
            continue
        value = _coerce(option, options[name])
        if option.choices and value not in option.choices:
            raise KitaruUsageError(f"{backend} option {name}={value!r} is not one of {', '.join(map(str, option.choices))}.")
        checked[name] = value
    return checked


def _coerce(option: BackendOption, value: Any) -> Any:
    if option.type == "int" and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if option.type == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if option.type == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, _TYPES[option.type]) or (option.type == "int" and isinstance(value, bool)):
        raise KitaruUsageError(f"option {option.name} must be {option.type}, got {value!r}.")
    return value
