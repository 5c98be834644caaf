"""schemathesis against /api/schema/: generated requests to every /api/v1/ operation, sent through the
WSGI application with a valid Basic credential, never get a 5xx and always answer as documented."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks as openapi_checks

from portal.wsgi import application as wsgi_application

from .api_support import api_world_make, auth

pytest_plugins = ["tests.apps.api_fixtures"]

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture
def _requests_keep_the_test_transaction():
    # Django closes the connection after each request it serves; the test client stops that, and
    # so must we: the WSGI calls run inside this test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_world(db, owner):
    return api_world_make(owner)


# Loaded at collection through the WSGI application, as any client would fetch it (no database needed).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_application).include(path_regex=r"^/api/v1/")


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_as_documented(case, api_world, _requests_keep_the_test_transaction):
    application, devices = api_world
    # Half the cases address a real linked device, so success answers are checked too, not only 404s.
    if "device_id" in (case.path_parameters or {}) and hash(str(case.path_parameters["device_id"])) % 2:
        case.path_parameters["device_id"] = str(devices[0].pk)
    case.call_and_validate(headers={"Authorization": auth(application)["HTTP_AUTHORIZATION"]}, checks=CHECKS)
