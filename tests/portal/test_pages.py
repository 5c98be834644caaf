from http import HTTPStatus

import pytest


@pytest.mark.django_db
def test_home_explains_and_links_to_claim(client):
    response = client.get("/")
    assert response.status_code == HTTPStatus.OK
    assert b'href="/claim/"' in response.content
    assert b"Claim a device" in response.content


@pytest.mark.django_db
def test_unknown_page_is_a_friendly_404(client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page/")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert b"There is nothing here" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/devices/not,a-uuid", "/device/v1/nope"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_api_path_answers_json_404(settings, debug, path, method):
    from django.test import Client

    settings.DEBUG = debug
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_pages_carry_a_csp_without_inline_scripts(client):
    response = client.get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"


def test_branding_css_uses_the_configured_colour(client, settings):
    settings.PORTAL_PRIMARY_COLOR = "#aa3300"
    response = client.get("/branding.css")
    assert response["Content-Type"].startswith("text/css")
    assert b"--primary: #aa3300" in response.content


def test_branding_css_ignores_a_colour_that_is_not_one(client, settings):
    settings.PORTAL_PRIMARY_COLOR = "red; } body { display:none"
    response = client.get("/branding.css")
    assert b"display:none" not in response.content


@pytest.mark.django_db
def test_signup_page_uses_the_portal_layout(client):
    response = client.get("/accounts/signup/")
    assert response.status_code == HTTPStatus.OK
    assert b"Skip to content" in response.content


@pytest.mark.django_db
def test_an_oversized_form_post_is_refused_before_it_is_buffered(client, settings):
    settings.DEBUG = False
    response = client.post("/accounts/login/", {"login": "x" * 3_000_000, "password": "p"})
    assert response.status_code == HTTPStatus.BAD_REQUEST


@pytest.mark.django_db
@pytest.mark.parametrize(
    "address",
    ["/admin/devices/device/?q=SN%00", "/devices/?sort=name%00", "/apps/abc%00/", "/api/v1/devices?status=%00"],
)
def test_a_nul_in_the_address_is_a_400(admin_client, address):
    response = admin_client.get(address)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"NUL character" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "target"), [("/api/docs", "/api/docs/"), ("/api/schema?format=json", "/api/schema/?format=json")]
)
def test_an_api_page_without_its_trailing_slash_is_redirected_to_it(client, path, target):
    response = client.get(path)
    assert response.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert response["Location"] == target
