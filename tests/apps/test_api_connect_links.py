"""Integrator API: POST /api/v1/connect-links mints a single-use link for a user to add the application."""

from datetime import timedelta
from http import HTTPStatus

from django.utils import timezone

from apps.models import Connection, ConnectLink
from apps.services.links import connect_link_accept

from ..factories import UserFactory
from .api_support import basic_header

pytest_plugins = ["tests.apps.api_fixtures"]

CONNECT_LINKS_URL = "/api/v1/connect-links"


def test_mints_a_link_with_its_expiry(client, application, app_auth, settings):
    response = client.post(CONNECT_LINKS_URL, **app_auth)
    assert response.status_code == HTTPStatus.CREATED
    body = response.json()
    assert body["url"].startswith(settings.PORTAL_BASE_URL + "/")
    link = ConnectLink.objects.get(application=application)
    assert timezone.now() + timedelta(minutes=59) < link.expires_at <= timezone.now() + timedelta(hours=1)
    assert body["expires_at"].startswith(link.expires_at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_the_url_holds_a_token_that_is_stored_only_as_a_digest(client, app_auth):
    url = client.post(CONNECT_LINKS_URL, **app_auth).json()["url"]
    token = url.rstrip("/").rsplit("/", 1)[-1]
    assert not ConnectLink.objects.filter(token_digest=token).exists()


def test_accepting_the_link_connects_the_user_who_can_then_be_claimed_for(client, application, app_auth):
    url = client.post(CONNECT_LINKS_URL, **app_auth).json()["url"]
    user = UserFactory()
    connect_link_accept(token=url.rstrip("/").rsplit("/", 1)[-1], user=user)
    assert Connection.objects.filter(application=application, user=user).exists()


def test_each_call_mints_a_new_link(client, app_auth):
    first = client.post(CONNECT_LINKS_URL, **app_auth).json()["url"]
    second = client.post(CONNECT_LINKS_URL, **app_auth).json()["url"]
    assert first != second


def test_a_body_is_not_needed_but_tolerated(client, app_auth):
    response = client.post(CONNECT_LINKS_URL, {}, content_type="application/json", **app_auth)
    assert response.status_code == HTTPStatus.CREATED


def test_needs_credentials(client, application):
    assert client.post(CONNECT_LINKS_URL).status_code == HTTPStatus.UNAUTHORIZED
    wrong = basic_header(application.app_id, "wrong")
    assert client.post(CONNECT_LINKS_URL, **wrong).status_code == HTTPStatus.UNAUTHORIZED
    assert not ConnectLink.objects.exists()


def test_get_is_a_json_405(client, app_auth):
    response = client.get(CONNECT_LINKS_URL, **app_auth)
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_is_throttled(client, app_auth, settings):
    settings.API_THROTTLE_RATE = "1/minute"
    client.post(CONNECT_LINKS_URL, **app_auth)
    response = client.post(CONNECT_LINKS_URL, **app_auth)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Retry-After" in response
    assert ConnectLink.objects.count() == 1
