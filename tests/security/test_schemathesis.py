"""The agent API fuzzed against its own OpenAPI schema (schemathesis), with a valid device token.

Each operation of /api/schema/ gets generated requests, valid and invalid (bodies, multipart
files, path parameters), sent through the real WSGI application with a freshly enrolled device's
token. The checks: no 5xx, every status code and content type is one the schema documents, every
response body matches its documented schema, and data the schema forbids is rejected.

Bounded for CI: MAX_EXAMPLES per operation with a fixed seed (derandomized), so a run is the same
run every time and takes a minute or two; raise SCHEMATHESIS_MAX_EXAMPLES locally to dig deeper.
"""

import os

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks as openapi_checks

from safeguard.wsgi import application
from tests.factories import enrolled_device

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
]


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The requests go through the real WSGI handler, whose request signals close the database
    connection; on PostgreSQL that would close the test's transaction. Django's test client
    detaches the same handler for the same reason."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(db) -> str:
    return enrolled_device(hostname="FUZZ-PC01")[1]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_agent_api_keeps_its_schema(case, token):
    # Enrolment is the one operation without a token; sending one there is harmless.
    case.call_and_validate(headers={"Authorization": f"Device {token}"}, checks=CHECKS)
