"""The web UI's server-side pieces without a browser: wait forms from JSON Schemas, the DAG, value previews, sign-in redirects."""

import json
import re
from typing import Literal

import pydantic
import pytest
from kitaru_server.ui._auth import safe_next
from kitaru_server.ui._dag import GROUP_MIN, render_dag
from kitaru_server.ui._forms import wait_fields
from kitaru_server.ui._preview import preview

from kitaru.waits import json_schema_of


class Address(pydantic.BaseModel):
    city: str = pydantic.Field(min_length=2)
    zip_code: str | None = None


class Order(pydantic.BaseModel):
    approved: bool
    quantity: int = pydantic.Field(ge=1, le=10)
    price: float = pydantic.Field(gt=0)
    size: Literal["s", "m", "l"] = "m"
    note: str = pydantic.Field("", max_length=80, description="Shown to the customer.")
    ship_to: Address
    tags: list[str] = []


def inputs(markup: str) -> dict[str, dict[str, str]]:
    """Each input/select/textarea by its data-path: its tag and attributes."""
    found = {}
    for tag, attributes in re.findall(r"<(input|select|textarea)([^>]*)>", markup):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', attributes))
        attrs["tag"] = tag
        attrs["required"] = " required" in attributes
        found.setdefault(attrs["data-path"].replace("&quot;", '"'), attrs)
    return found


def test_scalar_and_gate_waits():
    boolean = wait_fields(json_schema_of(bool), "w")
    assert boolean.count('type="radio"') == 2 and 'data-kind="boolean-radio"' in boolean and " required" in boolean
    integer = inputs(wait_fields(json_schema_of(int), "w"))["[]"]
    assert integer["type"] == "number" and integer["step"] == "1" and integer["data-kind"] == "integer"
    text = inputs(wait_fields(json_schema_of(str), "w"))["[]"]
    assert text["data-kind"] == "string" and text["required"]
    gate = inputs(wait_fields(None, "w"))["[]"]
    assert gate["tag"] == "textarea" and gate["data-kind"] == "json" and ">true</textarea>" in wait_fields(None, "w")


def test_a_model_becomes_fields_per_property_with_required_marks():
    markup = wait_fields(json_schema_of(Order), "w")
    fields = inputs(markup)
    assert fields['["approved"]']["type"] == "checkbox"  # inside an object: a checkbox
    quantity = fields['["quantity"]']
    assert (quantity["min"], quantity["max"], quantity["data-kind"], quantity["required"]) == ("1", "10", "integer", True)
    price = fields['["price"]']
    assert price["step"] == "any" and price["data-exclusiveminimum"] == "0"
    size = fields['["size"]']
    assert size["tag"] == "select" and not size["required"] and '<option value="&quot;m&quot;" selected>m</option>' in markup
    assert fields['["note"]']["maxlength"] == "80" and "Shown to the customer." in markup
    assert fields['["ship_to", "city"]']["minlength"] == "2" and fields['["ship_to", "city"]']["required"]
    assert not fields['["ship_to", "zip_code"]']["required"]  # Optional: not required
    assert fields['["tags"]']["data-kind"] == "json" and "A JSON list of strings" in markup
    assert markup.count('class="req"') == 3  # quantity, price, ship_to.city (a checkbox always has a value)
    assert "<legend>Address</legend>" in markup or "<legend>ship_to</legend>" in markup


def test_hostile_text_is_escaped():
    schema = {
        "type": "object",
        "title": "x",
        "properties": {'"><script>alert(1)</script>': {"type": "string", "description": "<b>bold</b>"}},
    }
    markup = wait_fields(schema, "w")
    assert "<script>" not in markup and "<b>" not in markup


def calls_of(*specs):
    """Call records: (invocation_id, name, status, parent invocation ids)."""
    return [
        {
            "call_id": f"c-{inv}",
            "invocation_id": inv,
            "name": name,
            "status": status,
            "parent_call_ids": [f"c-{p}" for p in parents],
            "created_at": 100.0,
            "ended_at": 101.5,
            "attempts": [{"number": 1}],
        }
        for inv, name, status, parents in specs
    ]


def test_dag_layers_calls_by_dependency_and_groups_wide_fan_outs():
    calls = calls_of(
        ("plan", "plan", "completed", []),
        ("fetch", "fetch", "completed", ["plan"]),
        ("fetch_2", "fetch", "failed", ["plan"]),
        ("join", "join", "running", ["fetch", "fetch_2"]),
    )
    svg = render_dag(calls, now=102.0)
    assert svg.startswith("<svg") and svg.count('class="dag-node ') == 4 and svg.count('<path class="dag-edge') == 4
    assert re.search(r'data-call="join"', svg) and 'class="dag-edge live"' in svg  # edges into a running call move
    x = {m[0]: float(m[1]) for m in re.findall(r'data-call="([^"]+)".*?<rect class="dag-box" x="([\d.]+)"', svg)}
    assert x["plan"] < x["fetch"] == x["fetch_2"] < x["join"]

    wide = calls_of(
        ("plan", "plan", "completed", []),
        *[(f"f_{i}", "f", "completed" if i % 3 else "running", ["plan"]) for i in range(GROUP_MIN + 2)],
    )
    svg = render_dag(wide, now=102.0)
    assert svg.count('class="dag-node ') == 2 and f"f ×{GROUP_MIN + 2}" in svg and svg.count('<path class="dag-edge') == 1
    assert render_dag([], now=0) == ""


def test_previews_json_and_arrow_but_never_unpickle(tmp_path):
    import pyarrow as pa

    from kitaru.storage import open_storage, store_value

    storage = open_storage(tmp_path.as_uri())
    settings = {"storage_url": tmp_path.as_uri(), "storage_options": {}}
    shown = preview(store_value(storage, {"b": [1, 2], "a": "x"}).to_dict(), settings)
    assert shown["kind"] == "json" and json.loads(shown["text"]) == {"b": [1, 2], "a": "x"}
    table = pa.table({"n": list(range(50)), "s": [f"row {i}" for i in range(50)]})
    shown = preview(store_value(storage, table).to_dict(), settings)
    assert (
        shown["kind"] == "table" and shown["total_rows"] == 50 and len(shown["rows"]) == 20 and shown["rows"][3] == ["3", "row 3"]
    )
    pickled = store_value(storage, {1, 2, 3}).to_dict()
    assert pickled["serializer"] == "cloudpickle"
    shown = preview(pickled, settings)
    assert shown["kind"] == "note" and "not previewed" in shown["message"]
    missing = {**store_value(storage, [1]).to_dict(), "uri": (tmp_path / "gone").as_uri()}
    assert preview(missing, settings)["kind"] == "note"  # a missing object: a note, never an error page


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/executions/abc#call=x", "/executions/abc#call=x"),
        ("/stacks?x=1", "/stacks?x=1"),
        ("https://evil.example/", "/executions"),
        ("//evil.example/", "/executions"),
        ("/\\evil.example", "/executions"),
        (None, "/executions"),
        ("javascript:alert(1)", "/executions"),
    ],
)
def test_sign_in_only_returns_to_local_pages(target, expected):
    assert safe_next(target) == expected


def test_login_cookie_is_accepted_by_pages_and_the_api(tmp_path):
    from fastapi.testclient import TestClient
    from kitaru_server import KitaruService
    from kitaru_server.api import create_app

    service = KitaruService(f"sqlite:///{tmp_path / 'k.db'}")
    key = service.create_api_key("someone")["key"]
    with TestClient(create_app(service=service), follow_redirects=False) as browser:
        assert browser.get("/executions", headers={"Accept": "text/html"}).headers["location"] == "/login?next=%2Fexecutions"
        assert browser.get("/executions").status_code == 401  # not a browser: the API's answer
        refused = browser.post("/login", data={"api_key": key + "x", "next": "/stacks"})
        assert refused.status_code == 401 and "refused this key" in refused.text and "set-cookie" not in refused.headers
        signed_in = browser.post("/login", data={"api_key": key, "next": "/stacks"})
        cookie = signed_in.headers["set-cookie"].lower()
        assert signed_in.headers["location"] == "/stacks" and "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/stacks").status_code == 200 and browser.get("/api/v1/executions").status_code == 200
        assert browser.post("/logout").headers["location"] == "/login"
        assert browser.get("/api/v1/executions").status_code == 401
    with TestClient(create_app(service=service, auth=False), base_url="http://127.0.0.1", follow_redirects=False) as open_server:
        assert open_server.get("/login").headers["location"] == "/executions"  # nothing to sign in to
        assert open_server.get("/executions").status_code == 200 and "Sign out" not in open_server.get("/executions").text


def test_the_list_pages_and_filters(tmp_path):
    from fastapi.testclient import TestClient
    from kitaru_server import KitaruService
    from kitaru_server.api import create_app

    service = KitaruService(f"sqlite:///{tmp_path / 'k.db'}")
    settings = {"storage_url": tmp_path.as_uri(), "storage_options": {}}
    for i in range(62):
        service.create_execution(
            {
                "exec_id": f"e{i:02d}",
                "flow": "alpha" if i % 2 else "beta",
                "flow_ref": "m:f",
                "settings": settings,
                "created_at": 1000.0 + i,
                "driver_id": None,
            }
        )
    with TestClient(create_app(service=service, auth=False), base_url="http://127.0.0.1") as browser:
        first = browser.get("/executions").text
        assert (
            first.count('<tr data-exec="') == 50
            and 'data-exec="e61"' in first
            and 'rel="next"' in first
            and 'rel="prev"' not in first
        )
        second = browser.get("/executions", params={"offset": 50}).text
        assert second.count('<tr data-exec="') == 12 and 'rel="prev"' in second and 'rel="next"' not in second
        alpha = browser.get("/executions", params={"flow": "alpha"}).text
        assert alpha.count('<tr data-exec="') == 31 and 'data-exec="e60"' not in alpha
        fragment = browser.get("/ui/fragments/executions", params={"flow": "beta", "offset": 30}).json()
        assert fragment["rows"].count("<tr data-exec=") == 1  # 31 beta executions: the second page holds one
        assert browser.get("/executions", params={"status": "nope"}).status_code == 422
