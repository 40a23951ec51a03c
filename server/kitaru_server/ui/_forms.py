"""HTML form fields generated from a wait's JSON Schema.

Each input carries what the browser needs to check it and to build the value
(``data-path``: where the value goes, as a JSON list; ``data-kind``: how to
read it). Supported: boolean (radio buttons at the top level, a checkbox
inside an object), integer and number (number inputs with their bounds),
string (text with length and pattern), ``enum`` (a select), objects (a field
per property, required ones marked), ``$ref``/``$defs`` and optional
(``anyOf`` with ``null``) fields. Anything else (arrays, unions) is a JSON
textarea. No schema (a gate) takes any JSON, ``true`` by default.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

__all__ = ["wait_fields"]

_MAX_DEPTH = 6
_LIST_EXAMPLES = {
    "string": ("strings", '["a", "b"]'),
    "integer": ("integers", "[1, 2]"),
    "number": ("numbers", "[1.5, 2]"),
    "boolean": ("booleans", "[true, false]"),
    "object": ("objects", '[{"key": "value"}]'),
}


def wait_fields(schema: dict[str, Any] | None, form_id: str) -> str:
    """The fields (trusted markup) of the form that answers a wait with ``schema``."""
    if schema is None:
        return _json_field(form_id, [], "Input (any JSON)", True, {}, default="true")
    return _field(schema, schema, form_id, [], _title(schema, "Input"), True, top=True, depth=0)


def _field(
    root: dict[str, Any],
    schema: dict[str, Any],
    form_id: str,
    path: list[str],
    label: str,
    required: bool,
    *,
    top: bool,
    depth: int,
) -> str:
    schema = _resolve(root, schema)
    nullable = False
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        others = [option for option in options if _resolve(root, option).get("type") != "null"]
        nullable = len(others) < len(options)
        if len(others) == 1:
            merged = {**{k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}, **_resolve(root, others[0])}
            return _field(root, merged, form_id, path, label, required and not nullable, top=top, depth=depth)
    kind = schema.get("type")
    if "enum" in schema:
        return _enum_field(schema, form_id, path, label, required)
    if kind == "boolean":
        return _boolean_field(schema, form_id, path, label, required, top=top)
    if kind in ("integer", "number"):
        return _number_field(schema, form_id, path, label, required, kind)
    if kind == "string":
        return _string_field(schema, form_id, path, label, required)
    if kind == "object" and isinstance(schema.get("properties"), dict) and depth < _MAX_DEPTH:
        return _object_field(root, schema, form_id, path, label, top=top, depth=depth)
    return _json_field(form_id, path, label, required, schema)


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/Name``), keeping the referring schema's own keys (title, default, description)."""
    for _ in range(_MAX_DEPTH):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _title(schema: dict[str, Any], fallback: str) -> str:
    return str(schema.get("title") or fallback)


def _common(form_id: str, path: list[str], kind: str, required: bool) -> str:
    return (
        f'id="{_id(form_id, path)}" name="{escape(".".join(path) or "value")}" data-path="{escape(json.dumps(path))}" '
        f'data-kind="{kind}"{" required" if required else ""}'
    )


def _id(form_id: str, path: list[str]) -> str:
    return escape(f"{form_id}-" + "-".join(path) if path else f"{form_id}-value")


def _label(form_id: str, path: list[str], label: str, required: bool, schema: dict[str, Any]) -> str:
    mark = ' <span class="req" title="required">*</span>' if required else ""
    help_text = f'<span class="help">{escape(str(schema["description"]))}</span>' if schema.get("description") else ""
    return f'<label for="{_id(form_id, path)}">{escape(label)}{mark}</label>{help_text}'


def _wrap(inner: str, kind: str) -> str:
    return f'<div class="field field-{kind}">{inner}<div class="field-error" aria-live="polite"></div></div>'


def _enum_field(schema: dict[str, Any], form_id: str, path: list[str], label: str, required: bool) -> str:
    default = schema.get("default")
    options = [] if required and "default" in schema else ['<option value="">— choose —</option>']
    for value in schema["enum"]:
        selected = " selected" if "default" in schema and value == default else ""
        options.append(f'<option value="{escape(json.dumps(value))}"{selected}>{escape(str(value))}</option>')
    select = f"<select {_common(form_id, path, 'enum', required)}>{''.join(options)}</select>"
    return _wrap(_label(form_id, path, label, required, schema) + select, "enum")


def _boolean_field(schema: dict[str, Any], form_id: str, path: list[str], label: str, required: bool, *, top: bool) -> str:
    default = schema.get("default")
    if not top:
        checked = " checked" if default is True else ""
        box = f'<input type="checkbox" {_common(form_id, path, "boolean", False)}{checked}>'
        return _wrap(f'<label class="check" for="{_id(form_id, path)}">{box} {escape(label)}</label>', "boolean")
    name = escape(".".join(path) or "value")
    radios = []
    for value, text in ((True, "Yes"), (False, "No")):
        checked = " checked" if default is value else ""
        radios.append(
            f'<label class="radio"><input type="radio" name="{name}" value="{json.dumps(value)}" '
            f'data-path="{escape(json.dumps(path))}" data-kind="boolean-radio"{" required" if required else ""}{checked}> '
            f"{text}</label>"
        )
    legend = escape(label) + (' <span class="req" title="required">*</span>' if required else "")
    return _wrap(f'<fieldset class="radios"><legend>{legend}</legend>{"".join(radios)}</fieldset>', "boolean")


def _number_field(schema: dict[str, Any], form_id: str, path: list[str], label: str, required: bool, kind: str) -> str:
    bounds = [f'step="{1 if kind == "integer" else "any"}"']
    for key, attribute in (("minimum", "min"), ("maximum", "max")):
        if isinstance(schema.get(key), int | float):
            bounds.append(f'{attribute}="{schema[key]}"')
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(schema.get(key), int | float):
            bounds.append(f'data-{key.lower()}="{schema[key]}"')
    value = f' value="{escape(str(schema["default"]))}"' if isinstance(schema.get("default"), int | float) else ""
    field = (
        f'<input type="number" inputmode="{"numeric" if kind == "integer" else "decimal"}" '
        f"{_common(form_id, path, kind, required)} {' '.join(bounds)}{value}>"
    )
    return _wrap(_label(form_id, path, label, required, schema) + field, kind)


def _string_field(schema: dict[str, Any], form_id: str, path: list[str], label: str, required: bool) -> str:
    limits = []
    for key, attribute in (("minLength", "minlength"), ("maxLength", "maxlength")):
        if isinstance(schema.get(key), int):
            limits.append(f'{attribute}="{schema[key]}"')
    if isinstance(schema.get("pattern"), str):
        limits.append(f'data-pattern="{escape(schema["pattern"])}"')  # JSON Schema patterns search; HTML's match whole values
    default = schema.get("default") if isinstance(schema.get("default"), str) else ""
    common = _common(form_id, path, "string", required)
    long_text = (schema.get("maxLength") or 10_000) > 200 and schema.get("format") is None
    if long_text:
        field = f'<textarea rows="3" {common} {" ".join(limits)}>{escape(default)}</textarea>'
    else:
        field = f'<input type="text" {common} {" ".join(limits)} value="{escape(default)}">'
    return _wrap(_label(form_id, path, label, required, schema) + field, "string")


def _object_field(
    root: dict[str, Any], schema: dict[str, Any], form_id: str, path: list[str], label: str, *, top: bool, depth: int
) -> str:
    required = set(schema.get("required") or [])
    inner = [
        _field(root, child, form_id, [*path, name], _title(child, name), name in required, top=False, depth=depth + 1)
        for name, child in schema["properties"].items()
        if isinstance(child, dict)
    ]
    legend = "" if top else f"<legend>{escape(label)}</legend>"
    return (
        f'<fieldset class="object" data-path="{escape(json.dumps(path))}" data-kind="object">{legend}{"".join(inner)}</fieldset>'
    )


def _json_field(
    form_id: str, path: list[str], label: str, required: bool, schema: dict[str, Any], *, default: str | None = None
) -> str:
    if default is None and "default" in schema:
        default = json.dumps(schema["default"])
    expects = f'<span class="help">{escape(_describe(schema))}</span>'
    common = _common(form_id, path, "json", required)
    field = f'<textarea rows="3" class="mono" spellcheck="false" {common}>{escape(default or "")}</textarea>'
    return _wrap(_label(form_id, path, label, required, {}) + expects + field, "json")


def _describe(schema: dict[str, Any]) -> str:
    """What a JSON field expects, in words (``a JSON list of strings``), else its schema without titles and defaults."""
    if not schema:
        return "Any JSON value, for example true."
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    if schema.get("type") == "array" and items.get("type") in _LIST_EXAMPLES:
        plural, example = _LIST_EXAMPLES[items["type"]]
        return f"A JSON list of {plural}, for example {example}."
    shape = {k: v for k, v in schema.items() if k not in ("title", "default", "description")}
    return f"JSON matching {json.dumps(shape)}."
