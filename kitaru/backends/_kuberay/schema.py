"""The CRDs' ``openAPIV3Schema`` as a JSON-schema validator, with the API server's strict field checks.

Kubernetes prunes (or, with ``fieldValidation=Strict``, rejects) fields a structural schema does not
declare; JSON schema allows them. So every object schema with ``properties`` and without
``x-kubernetes-preserve-unknown-fields`` is closed here, ``x-kubernetes-int-or-string`` becomes
``integer or string`` and ``nullable`` admits ``null``.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any

__all__ = ["PLURALS", "load_schema", "schema_errors"]

PLURALS = {"RayJob": "rayjobs", "RayCluster": "rayclusters"}


def load_schema(plural: str) -> dict[str, Any]:
    """The CRD's raw ``openAPIV3Schema`` (version ``v1``) for ``rayjobs`` or ``rayclusters``."""
    data = resources.files("kitaru.backends._kuberay").joinpath("crds", f"{plural}.v1.json.gz").read_bytes()
    return json.loads(gzip.decompress(data))


@functools.cache
def _validator(plural: str) -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(_structural(load_schema(plural)))


def schema_errors(body: dict[str, Any]) -> list[str]:
    """Every way ``body`` breaks its CRD's schema, as the API server words it (``spec.x: ...``), sorted.

    Unknown fields read ``unknown field "spec.x"`` (the API server's strict decoding error).
    """
    plural = PLURALS.get(str(body.get("kind")))
    if plural is None:
        return [f"kind {body.get('kind')!r} is not one of {', '.join(PLURALS)}"]
    errors = []
    for error in _validator(plural).iter_errors(body):
        path = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "additionalProperties":
            declared = set(error.schema.get("properties", {}))
            for extra in sorted(set(error.instance) - declared):
                errors.append(f'unknown field "{path + "." if path else ""}{extra}"')
        else:
            errors.append(f"{path or '<root>'}: {error.message}")
    return sorted(errors)


def _structural(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _structural(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out
