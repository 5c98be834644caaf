"""Every URL of the portal × (anonymous, another owner / application, the right principal).

The list of URLs is generated from the URL conf, so a new URL cannot be forgotten: a URL that is
neither classified below nor declared public fails `test_every_url_is_classified`.
"""

import uuid
from http import HTTPStatus

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.models import AppLink, Delivery
from devices.command_queue import command_send

from ..apps.api_support import auth, basic_header
from ..factories import ApplicationFactory, DeviceFactory

# Answered without an owner session, or guarded by their own credentials (tested in their suites).
PUBLIC = {
    "home", "branding-css", "api-schema", "api-docs", "healthz", "machine-not-found",
    "claiming:qr",  # the QR label's short URL: a redirect to the claim form
    "devices:notifications-unsubscribe",  # a signed token, works logged out
}
PUBLIC_NAMESPACES = {"admin", "device-protocol"}  # staff session / factory key and bearer token
PUBLIC_PREFIXES = ("accounts/",)  # allauth

# Owner pages about one device (<uuid:pk>) or one application (<app_id>), and owner-wide pages.
DEVICE_PAGES = {
    "devices:detail", "claiming:device-reset", "claiming:device-transfer", "claiming:transfer-cancel",
    "claiming:device-pin", "devices:command", "apps-device:link", "devices:rename",
    "devices:notifications-device", "devices:credentials-revoke",
    "devices:share-invite", "devices:share-leave", "devices:support-grant", "devices:support-grant-end",
    "devices:detail-live",  # the device page's live fragments (portal/live.py)
    "devices:readings-csv",
}
APP_PAGES = {
    "apps:detail", "apps:settings", "apps:secret", "apps:shown-once", "apps:signing-secret", "apps:pause",
    "apps:delete", "apps:deliveries-live",
    "apps:connect-link", "apps:remove", "apps:device-link", "apps:device-unlink", "apps:replay", "apps:test",
    "apps:retry",
}
OWNER_PAGES = {
    "devices:list", "devices:list-live", "claiming:claim", "apps:list", "apps:create", "devices:notifications",
}
# A one-time token in the URL, login required.
TOKEN_PAGES = {"claiming:transfer-accept", "apps:connect", "sharing:invitation"}
API_DEVICE = {"apps-api:device-detail", "apps-api:reading-list", "apps-api:command-list", "apps-api:command-detail"}
API_OTHER = {"apps-api:device-list", "apps-api:event-list", "apps-api:connect-link-create", "claiming-api:claim-create"}
# Sharing actions that name a share or an invitation, "Share selected" (devices in the body) and the
# support pages: every role of each is asserted in test_access_roles.py (the support list in
# tests/devices/test_support.py).
ROLE_MATRIX_PAGES = {
    "devices:invitation-cancel", "devices:share-role", "devices:share-revoke", "devices:share-selected",
    "support:list", "support:device", "support:command",
}  # fmt: skip
CLASSIFIED = DEVICE_PAGES | APP_PAGES | OWNER_PAGES | TOKEN_PAGES | API_DEVICE | API_OTHER | ROLE_MATRIX_PAGES


def _walk(patterns, prefix="", namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield prefix + str(entry.pattern), namespace, name


ALL_URLS = list(_walk(get_resolver().url_patterns))


def _is_public(route, namespace, name):
    return name in PUBLIC or namespace in PUBLIC_NAMESPACES or route.startswith(PUBLIC_PREFIXES)


def test_every_url_is_classified():
    unknown = [
        (route, name) for route, namespace, name in ALL_URLS
        if not _is_public(route, namespace, name) and name not in CLASSIFIED
    ]
    assert unknown == [], "classify these URLs in tests/hardening/test_access_matrix.py"


def test_every_classified_url_still_exists():
    names = {name for _, _, name in ALL_URLS}
    assert CLASSIFIED - names == set()


@pytest.fixture
def world(owner, other_owner):
    device = DeviceFactory(owner=owner)
    application = ApplicationFactory(owner=owner)
    AppLink.objects.create(application=application, device=device)
    command = command_send(device=device, name="identify", sent_by_app=application.app_id)
    delivery = Delivery.objects.create(application=application, event_type="ping")
    other_application = ApplicationFactory(owner=other_owner)
    return {"device": device, "application": application, "command": command, "delivery": delivery,
            "other_application": other_application}


def _url(name, world):
    kwargs = {}
    route = next(route for route, _, n in ALL_URLS if n == name)
    if "<uuid:pk>" in route:
        kwargs["pk"] = world["device"].pk
    if "<uuid:device_id>" in route:
        kwargs["device_id"] = world["device"].pk
    if "<uuid:command_id>" in route:
        kwargs["command_id"] = world["command"].pk
    if "<str:app_id>" in route:
        kwargs["app_id"] = world["application"].app_id
    if "<int:delivery_id>" in route:
        kwargs["delivery_id"] = world["delivery"].pk
    if "<str:token>" in route:
        kwargs["token"] = "not-a-real-token"
    return reverse(name, kwargs=kwargs)


def _secrets_of(world):
    device, application = world["device"], world["application"]
    return [device.serial, str(device.pk), application.app_id, application.name]


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("name", sorted(DEVICE_PAGES | APP_PAGES | OWNER_PAGES | TOKEN_PAGES))
def test_anonymous_is_sent_to_log_in(client, world, name, method):
    response = getattr(client, method)(_url(name, world))
    if response.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        return  # a POST-only action refuses GET before anything else
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("name", sorted(DEVICE_PAGES | APP_PAGES))
def test_another_owner_gets_404(client, other_owner, world, name):
    client.force_login(other_owner)
    answers = [client.get(_url(name, world)), client.post(_url(name, world))]
    # The method the view serves says 404; the other one is refused before anything is looked up.
    assert {r.status_code for r in answers} <= {HTTPStatus.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED}
    assert HTTPStatus.NOT_FOUND in {r.status_code for r in answers}
    for response in answers:
        for value in _secrets_of(world):
            assert value.encode() not in response.content


@pytest.mark.parametrize("name", sorted(DEVICE_PAGES | APP_PAGES))
def test_the_owner_gets_the_page(client, owner, world, name):
    client.force_login(owner)
    response = client.get(_url(name, world))
    if name == "apps:shown-once":  # nothing left to show: back to the application's page
        assert response.url == reverse("apps:detail", args=[world["application"].app_id])
        return
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.METHOD_NOT_ALLOWED)


@pytest.mark.parametrize("name", sorted(OWNER_PAGES))
def test_owner_wide_pages_show_nothing_of_another_owner(client, other_owner, world, name):
    client.force_login(other_owner)
    response = client.get(_url(name, world))
    assert response.status_code == HTTPStatus.OK
    for value in _secrets_of(world):
        assert value.encode() not in response.content


@pytest.mark.parametrize("name", sorted(TOKEN_PAGES))
def test_a_wrong_token_reveals_nothing(client, other_owner, world, name):
    client.force_login(other_owner)
    response = client.get(_url(name, world))
    assert response.status_code in (HTTPStatus.NOT_FOUND, HTTPStatus.OK, HTTPStatus.BAD_REQUEST, HTTPStatus.GONE)
    for value in _secrets_of(world):
        assert value.encode() not in response.content


@pytest.mark.parametrize("name", sorted(API_DEVICE | API_OTHER))
@pytest.mark.parametrize("credentials", ["none", "wrong-secret"])
def test_api_without_valid_credentials_is_401(client, world, name, credentials):
    headers = {} if credentials == "none" else basic_header(world["application"].app_id, "wrong")
    response = client.get(_url(name, world), **headers)
    if response.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        response = client.post(_url(name, world), {}, content_type="application/json", **headers)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "WWW-Authenticate" in response
    assert response.json()["error"]["code"]


@pytest.mark.parametrize("name", sorted(API_DEVICE))
def test_api_of_another_application_is_404(client, world, name):
    response = client.get(_url(name, world), **auth(world["other_application"]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert world["device"].serial not in response.content.decode()


@pytest.mark.parametrize("name", sorted(API_DEVICE))
def test_api_of_the_linked_application_answers(client, world, name):
    response = client.get(_url(name, world), **auth(world["application"]))
    assert response.status_code == HTTPStatus.OK


def test_api_lists_of_another_application_hold_nothing_of_this_one(client, world):
    for name in ("apps-api:device-list", "apps-api:event-list"):
        response = client.get(reverse(name), **auth(world["other_application"]))
        assert response.status_code == HTTPStatus.OK
        assert response.json()["results"] == []


def test_an_unknown_device_and_a_hidden_one_look_the_same(client, world):
    hidden = client.get(_url("apps-api:device-detail", world), **auth(world["other_application"]))
    missing = client.get(reverse("apps-api:device-detail", kwargs={"device_id": uuid.uuid4()}),
                         **auth(world["other_application"]))
    assert hidden.status_code == missing.status_code == HTTPStatus.NOT_FOUND
    assert hidden.json() == missing.json()
