"""Integrator API: Basic AppId:Secret authentication, throttling per application, one error shape."""

import base64
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from .api_support import auth, basic_header, make_application

pytest_plugins = ["tests.apps.api_fixtures"]

DEVICES_URL = "/api/v1/devices"


def assert_error(response, status, code=None):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_the_urls_are_stable():
    assert reverse("apps-api:device-list") == DEVICES_URL


def test_valid_credentials_are_accepted(client, app_auth):
    assert client.get(DEVICES_URL, **app_auth).status_code == HTTPStatus.OK


def test_missing_credentials_get_401_with_a_challenge(client, application):
    response = client.get(DEVICES_URL)
    assert_error(response, HTTPStatus.UNAUTHORIZED, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Basic realm="api"'


def test_wrong_secret_gets_401_with_a_challenge(client, application):
    response = client.get(DEVICES_URL, **basic_header(application.app_id, "not-the-secret"))
    assert_error(response, HTTPStatus.UNAUTHORIZED, "authentication_failed")
    assert response["WWW-Authenticate"] == 'Basic realm="api"'


def test_unknown_app_id_gets_the_same_answer_as_a_wrong_secret(client, application):
    wrong_secret = client.get(DEVICES_URL, **basic_header(application.app_id, "not-the-secret")).json()
    unknown_app = client.get(DEVICES_URL, **basic_header("no-such-app", application.raw_secret)).json()
    assert wrong_secret == unknown_app


def test_deleted_application_gets_401(client, application):
    credentials = auth(application)
    application.delete()
    assert_error(client.get(DEVICES_URL, **credentials), HTTPStatus.UNAUTHORIZED)


def test_paused_application_gets_401(client, application):
    application.paused_at = timezone.now()
    application.save(update_fields=["paused_at"])
    error = assert_error(client.get(DEVICES_URL, **auth(application)), HTTPStatus.UNAUTHORIZED)
    assert "paused" in error["message"]


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":secret-without-app-id").decode(),
        "Basic " + base64.b64encode(b"app-id-without-secret:").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"x" * 41 + b":secret").decode(),
        "Basic " + base64.b64encode(b"app\x00id:secret").decode(),
    ],
)
def test_malformed_basic_credentials_get_401(client, application, header):
    response = client.get(DEVICES_URL, HTTP_AUTHORIZATION=header)
    assert_error(response, HTTPStatus.UNAUTHORIZED, "authentication_failed")
    assert response["WWW-Authenticate"] == 'Basic realm="api"'


def test_another_scheme_gets_401_with_the_basic_challenge(client, application):
    response = client.get(DEVICES_URL, HTTP_AUTHORIZATION=f"Bearer {application.raw_secret}")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Basic realm="api"'


def test_an_owner_session_is_not_an_api_credential(owner_client, application):
    assert_error(owner_client.get(DEVICES_URL), HTTPStatus.UNAUTHORIZED)


def test_post_needs_no_csrf_token(application, linked_device):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/api/v1/devices/{linked_device.pk}/commands",
        {"name": "reboot"},
        content_type="application/json",
        **auth(application),
    )
    assert response.status_code == HTTPStatus.CREATED


# --- throttling ----------------------------------------------------------------------------------


def test_throttled_past_the_rate_with_retry_after(client, app_auth, settings):
    settings.API_THROTTLE_RATE = "2/minute"
    for _ in range(2):
        assert client.get(DEVICES_URL, **app_auth).status_code == HTTPStatus.OK
    response = client.get(DEVICES_URL, **app_auth)
    assert_error(response, HTTPStatus.TOO_MANY_REQUESTS, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60


def test_throttling_counts_per_application(client, app_auth, other_application, settings):
    settings.API_THROTTLE_RATE = "1/minute"
    assert client.get(DEVICES_URL, **app_auth).status_code == HTTPStatus.OK
    assert client.get(DEVICES_URL, **app_auth).status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert client.get(DEVICES_URL, **auth(other_application)).status_code == HTTPStatus.OK


def test_throttling_counts_requests_for_hidden_devices_too(client, app_auth, settings):
    settings.API_THROTTLE_RATE = "1/minute"
    missing = "/api/v1/devices/00000000-0000-4000-8000-000000000000"
    assert client.get(missing, **app_auth).status_code == HTTPStatus.NOT_FOUND
    assert client.get(missing, **app_auth).status_code == HTTPStatus.TOO_MANY_REQUESTS


# --- one error shape -----------------------------------------------------------------------------


def test_unknown_path_is_a_json_404(client, app_auth):
    assert_error(client.get("/api/v1/no-such-thing", **app_auth), HTTPStatus.NOT_FOUND)


def test_malformed_device_id_is_a_json_404(client, app_auth):
    assert_error(client.get("/api/v1/devices/not-a-uuid", **app_auth), HTTPStatus.NOT_FOUND)


def test_wrong_method_is_a_json_405(client, app_auth):
    response = client.delete(DEVICES_URL, **app_auth)
    assert_error(response, HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_wrong_content_type_is_a_json_415(client, app_auth, linked_device):
    url = f"/api/v1/devices/{linked_device.pk}/commands"
    response = client.post(url, "name=reboot", content_type="application/x-www-form-urlencoded", **app_auth)
    assert_error(response, HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")


@pytest.mark.parametrize("body", ['{"name": ', "[1, 2", '{"name": NaN}', "\x00"])
def test_malformed_json_is_a_json_400(client, app_auth, linked_device, body):
    url = f"/api/v1/devices/{linked_device.pk}/commands"
    response = client.post(url, body, content_type="application/json", **app_auth)
    assert_error(response, HTTPStatus.BAD_REQUEST, "malformed_json")


def test_a_json_array_body_is_a_400_naming_the_problem(client, app_auth, linked_device):
    url = f"/api/v1/devices/{linked_device.pk}/commands"
    response = client.post(url, [1, 2], content_type="application/json", **app_auth)
    error = assert_error(response, HTTPStatus.BAD_REQUEST, "invalid")
    assert "non_field_errors" in error["fields"]


def test_a_replaced_secret_is_refused_from_the_next_request(client, application):
    from apps.services.applications import application_secret_replace

    old = auth(application)
    assert client.get(DEVICES_URL, **old).status_code == HTTPStatus.OK
    new_secret = application_secret_replace(application=application)
    assert_error(client.get(DEVICES_URL, **old), HTTPStatus.UNAUTHORIZED, "authentication_failed")
    assert client.get(DEVICES_URL, **basic_header(application.app_id, new_secret)).status_code == HTTPStatus.OK


def test_pausing_refuses_the_next_request(client, application):
    from apps.services.applications import application_pause

    credentials = auth(application)
    assert client.get(DEVICES_URL, **credentials).status_code == HTTPStatus.OK
    application_pause(application=application, reason="Paused by the owner.")
    error = assert_error(client.get(DEVICES_URL, **credentials), HTTPStatus.UNAUTHORIZED)
    assert "paused" in error["message"]


def test_paused_application_can_be_resumed(client, application):
    application.paused_at = timezone.now()
    application.save(update_fields=["paused_at"])
    application.paused_at = None
    application.save(update_fields=["paused_at"])
    assert client.get(DEVICES_URL, **auth(application)).status_code == HTTPStatus.OK


def test_secrets_are_never_logged(client, application, caplog):
    client.get(DEVICES_URL, **basic_header(application.app_id, "wrong-secret-value"))
    client.get(DEVICES_URL, **auth(application))
    assert "wrong-secret-value" not in caplog.text
    assert application.raw_secret not in caplog.text


def test_a_second_application_of_the_same_owner_has_its_own_secret(client, owner, application):
    second = make_application(owner)
    assert client.get(DEVICES_URL, **basic_header(second.app_id, application.raw_secret)).status_code == 401


def test_repeated_wrong_secrets_from_one_address_end_in_429(client, application):
    wrong = basic_header(application.app_id, "not-the-secret")
    for _ in range(30):
        assert client.get(DEVICES_URL, **wrong).status_code == HTTPStatus.UNAUTHORIZED
    response = client.get(DEVICES_URL, **auth(application))  # even the right Secret waits
    assert_error(response, HTTPStatus.TOO_MANY_REQUESTS, "throttled")
    assert int(response["Retry-After"]) > 0
    other_address = client.get(DEVICES_URL, REMOTE_ADDR="198.51.100.20", **auth(application))
    assert other_address.status_code == HTTPStatus.OK
