"""The OpenAPI schema is the agent API's contract: it must generate cleanly and cover every endpoint."""

import re
from io import StringIO

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import URLPattern
from drf_spectacular.drainage import reset_generator_stats

from safeguard.core import agent_urls

AGENT_PREFIX = "/api/v1/agent/"
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    """Generated once per module the way CI and a client would: `manage.py spectacular --validate`."""
    reset_generator_stats()  # warnings from an earlier generation in this process must not count
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    err = StringIO()
    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path), stderr=err)
    except Exception as exc:
        pytest.fail(f"schema generation failed: {exc}\n{err.getvalue()}")
    return yaml.safe_load(path.read_text())


def agent_paths() -> list[str]:
    """Every route agent_urls mounts, with <converter:name> written as OpenAPI's {name}."""
    routes = [str(pattern.pattern) for pattern in agent_urls.urlpatterns if isinstance(pattern, URLPattern)]
    return [AGENT_PREFIX + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route) for route in routes]


def test_generation_has_no_warnings_or_errors(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]


def test_every_agent_endpoint_is_documented(schema):
    expected = agent_paths()
    assert {"/api/v1/agent/enrol", "/api/v1/agent/heartbeat", "/api/v1/agent/config"} <= set(expected)
    missing = [path for path in expected if path not in schema["paths"]]
    assert not missing


@pytest.mark.parametrize(
    ("path", "method", "success"),
    [
        ("/api/v1/agent/enrol", "post", "201"),
        ("/api/v1/agent/heartbeat", "post", "200"),
        ("/api/v1/agent/thumbnail", "post", "204"),
        ("/api/v1/agent/config", "get", "200"),
        ("/api/v1/agent/confide", "post", "201"),
        ("/api/v1/agent/assistance", "post", "201"),
    ],
)
def test_each_endpoint_documents_success_and_error_shapes(schema, path, method, success):
    operation = schema["paths"][path][method]
    responses = operation["responses"]
    assert success in responses
    if method == "post":
        assert responses["400"]["content"]["application/json"]["schema"]["$ref"] == ERROR_REF
        assert "requestBody" in operation
    if path.endswith("/enrol"):
        assert operation.get("security") in (None, [])
        assert "401" not in responses
    else:
        assert operation["security"] == [{"DeviceToken": []}]
        assert responses["401"]["content"]["application/json"]["schema"]["$ref"] == ERROR_REF
        assert "WWW-Authenticate" in responses["401"]["headers"]


def test_config_documents_etag_and_304(schema):
    operation = schema["paths"]["/api/v1/agent/config"]["get"]
    assert "304" in operation["responses"]
    assert "ETag" in operation["responses"]["200"]["headers"]
    assert any(p["name"] == "If-None-Match" and p["in"] == "header" for p in operation["parameters"])


def test_the_error_shape_and_device_scheme_are_components(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "fields"}
    scheme = schema["components"]["securitySchemes"]["DeviceToken"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert "Device <token>" in scheme["description"]


def test_every_field_is_described(schema):
    undocumented = [
        f"{name}.{field}"
        for name, component in schema["components"]["schemas"].items()
        for field, spec in component.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert not undocumented


@pytest.mark.django_db
def test_the_schema_is_served(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert "/api/v1/agent/enrol" in response.json()["paths"]


@pytest.mark.django_db
def test_the_docs_page_uses_only_local_assets(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert not re.search(r"https?://|(?:src|href)=\"//", page), "the docs page must not load anything remote"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    # Swagger UI's start-up script is served by the docs view itself, as a file (no inline script: CSP).
    assert "/api/docs/?script=" in assets
    script = client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
    for asset in assets:
        if asset == "/api/docs/?script=":
            continue
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a shipped static file"
