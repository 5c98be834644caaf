"""The OpenAPI schema of the integrator API and the /api/docs/ page that renders it."""

from http import HTTPStatus

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

API_OPERATIONS = {
    ("/api/v1/devices", "get"),
    ("/api/v1/devices/{device_id}", "get"),
    ("/api/v1/devices/{device_id}/readings", "get"),
    ("/api/v1/devices/{device_id}/commands", "get"),
    ("/api/v1/devices/{device_id}/commands", "post"),
    ("/api/v1/devices/{device_id}/commands/{command_id}", "get"),
    ("/api/v1/events", "get"),
    ("/api/v1/claims", "post"),
    ("/api/v1/connect-links", "post"),
}


@pytest.fixture
def schema(client):
    response = client.get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == HTTPStatus.OK
    return response.json()


def _operations(schema):
    for path, item in schema["paths"].items():
        if path.startswith("/api/v1/"):
            for method, operation in item.items():
                yield path, method, operation


def test_schema_is_openapi_3_1_without_credentials(schema):
    assert schema["openapi"].startswith("3.1")


def test_every_integrator_endpoint_is_documented(schema):
    assert {(path, method) for path, method, _ in _operations(schema)} == API_OPERATIONS


def test_basic_security_scheme(schema):
    assert schema["components"]["securitySchemes"]["appBasic"] == {
        "type": "http",
        "scheme": "basic",
        "description": schema["components"]["securitySchemes"]["appBasic"]["description"],
    }
    for _path, _method, operation in _operations(schema):
        assert operation["security"] == [{"appBasic": []}]


def test_every_operation_documents_its_errors_in_the_one_shape(schema):
    for path, method, operation in _operations(schema):
        for status in ("400", "401", "429"):
            response = operation["responses"][status]
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorOutput"}, (path, method, status)
            assert content["examples"], (path, method, status)
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        if "{device_id}" in path:
            assert "404" in operation["responses"], (path, method)


def test_error_output_schema(schema):
    error = schema["components"]["schemas"]["ErrorOutput"]
    assert error["required"] == ["error"]
    detail = schema["components"]["schemas"]["ApiErrorDetailOutput"]
    assert set(detail["properties"]) == {"code", "message", "fields"}
    assert set(detail["required"]) == {"code", "message"}


def test_post_operations_carry_request_examples(schema):
    for path, method, operation in _operations(schema):
        if method == "post" and "requestBody" in operation:
            assert operation["requestBody"]["content"]["application/json"].get("examples"), path


def test_docs_page_renders_the_vendored_swagger_ui(client):
    response = client.get(reverse("api-docs"))
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "vendor/swagger-ui-bundle-5.35.0.js" in html
    assert "vendor/swagger-ui-5.35.0.css" in html
    assert "js/api-docs.js" in html
    assert f'data-schema-url="{reverse("api-schema")}?format=json"' in html
    assert "<script>" not in html  # the CSP forbids inline scripts
    for name in ("vendor/swagger-ui-bundle-5.35.0.js", "vendor/swagger-ui-5.35.0.css", "js/api-docs.js"):
        assert finders.find(name), name


def test_docs_page_is_in_the_navigation(client):
    html = client.get(reverse("home")).content.decode()
    assert f'href="{reverse("api-docs")}">API<' in html
