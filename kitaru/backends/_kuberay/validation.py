"""One check for every RayJob and RayCluster Kitaru writes: the CRD's schema and the operator's rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitaru.backends._kuberay.rules import raycluster_error, rayjob_error
from kitaru.backends._kuberay.schema import schema_errors
from kitaru.errors import KitaruUsageError

__all__ = ["problems", "validate"]


def problems(body: Mapping[str, Any]) -> list[str]:
    """Everything the API server (schema, strict fields) or the operator (its rules) would reject in ``body``."""
    found = schema_errors(dict(body))
    if found:  # the API server refuses it before the operator ever sees it
        return found
    rule = rayjob_error(body) if body.get("kind") == "RayJob" else raycluster_error(body)
    return [f"operator: {rule}"] if rule else []


def validate(body: Mapping[str, Any]) -> None:
    """Raise when ``body`` would be rejected.

    Raises:
        KitaruUsageError: one line naming the object and the first rule it breaks.
    """
    found = problems(body)
    if found:
        name = body.get("metadata", {}).get("name")
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise KitaruUsageError(f"{body.get('kind')} {name!r} would be rejected: {found[0]}{more}.")
