"""The API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, documented statuses, errors as JSON.

Bounded and deterministic: a few examples per operation, a fixed seed, our
``/api/v1`` routes only (the live streams are tested in test_api.py: a fuzzer
would wait on them for as long as an execution runs). It runs on SQLite and on
PostgreSQL, whose column types refuse more inputs.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from kitaru_server import KitaruService
from kitaru_server.api import create_app
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = int(os.environ.get("KITARU_FUZZ_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_service(request, tmp_path_factory):
    """One database per kind for every operation (state left by one operation is input to the next)."""
    from cryptography.fernet import Fernet

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'kitaru.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KITARU_SECRET_KEY", Fernet.generate_key().decode())
        service = KitaruService(url)
        service.create_execution({"exec_id": "0", "flow": "f", "flow_ref": "m:f", "settings": {}})  # something for ids to hit
        yield service
    service.close()


@pytest.fixture(scope="module")
def fuzz_key(fuzz_service):
    return fuzz_service.create_api_key("fuzzer", kind="service_account", admin=True)["key"]


# The schema does not depend on the database: the app is built once, and each test gives it its service.
APP = create_app(service=None)  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex=r"^/api/v1/").exclude(path_regex=r"/stream$")


@pytest.fixture
def served(fuzz_service):
    APP.state.service = fuzz_service
    yield
    APP.state.service = None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_server_fail(case, fuzz_key, served):
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"}, checks=CHECKS)
