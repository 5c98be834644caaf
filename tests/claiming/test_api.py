"""Integrator API: POST /api/v1/claims, claiming for a user who connected the application."""

from http import HTTPStatus

import pytest

from apps.models import AppLink, Connection
from claiming.models import OwnershipEvent
from claiming.services import INVALID_MESSAGE
from devices.models import DeviceEvent, DeviceEventType
from tests.apps.api_support import auth, basic_header, make_application
from tests.factories import ClaimCodeFactory, DeviceFactory, UserFactory

pytest_plugins = ["tests.apps.api_fixtures"]

CLAIMS_URL = "/api/v1/claims"


@pytest.fixture
def connected_user(application):
    user = UserFactory(email="bob@example.com")
    Connection.objects.create(application=application, user=user)
    return user


@pytest.fixture
def code():
    return ClaimCodeFactory()


@pytest.fixture
def coded_device(code):
    return DeviceFactory(claim_code=code, serial="CODE-1")


@pytest.fixture
def pin_device():
    return DeviceFactory(serial="PIN-1", raw_pin="2468")


def claim(client, body, credentials, **extra):
    return client.post(CLAIMS_URL, body, content_type="application/json", **credentials, **extra)


def test_claim_by_code_gives_the_devices_and_links_them(
    client, application, app_auth, connected_user, coded_device, code
):
    response = claim(client, {"user_email": "bob@example.com", "code": code.raw_code}, app_auth)
    assert response.status_code == HTTPStatus.CREATED
    assert [row["id"] for row in response.json()["devices"]] == [str(coded_device.pk)]
    coded_device.refresh_from_db()
    assert coded_device.owner == connected_user
    assert AppLink.objects.filter(application=application, device=coded_device).exists()


def test_claimed_device_is_then_visible_through_the_api(client, app_auth, connected_user, coded_device, code):
    claim(client, {"user_email": "bob@example.com", "code": code.raw_code}, app_auth)
    assert client.get(f"/api/v1/devices/{coded_device.pk}", **app_auth).status_code == HTTPStatus.OK


def test_claim_is_audited_like_the_owners_form(client, application, app_auth, connected_user, coded_device, code):
    claim(client, {"user_email": "bob@example.com", "code": code.raw_code}, app_auth, REMOTE_ADDR="203.0.113.9")
    audit = OwnershipEvent.objects.get(device=coded_device)
    assert (audit.kind, audit.actor, audit.owner, audit.ip) == (
        "claimed",
        connected_user,
        connected_user,
        "203.0.113.9",
    )
    event = DeviceEvent.objects.get(device=coded_device, type=DeviceEventType.CLAIMED)
    assert event.data["application_id"] == application.app_id


def test_claim_by_code_for_named_serials_only(client, app_auth, connected_user, code):
    wanted, left = DeviceFactory(claim_code=code), DeviceFactory(claim_code=code)
    body = {"user_email": "bob@example.com", "code": code.raw_code, "serials": [wanted.serial]}
    response = claim(client, body, app_auth)
    assert [row["serial"] for row in response.json()["devices"]] == [wanted.serial]
    left.refresh_from_db()
    assert left.owner is None


def test_claim_by_serial_and_pin(client, application, app_auth, connected_user, pin_device):
    response = claim(client, {"user_email": "bob@example.com", "serial": "PIN-1", "pin": "2468"}, app_auth)
    assert response.status_code == HTTPStatus.CREATED
    pin_device.refresh_from_db()
    assert pin_device.owner == connected_user
    assert not pin_device.claimable
    assert AppLink.objects.filter(application=application, device=pin_device).exists()


def test_serial_is_matched_as_the_label_reads(client, app_auth, connected_user, pin_device):
    # Ref: #26
    response = claim(client, {"user_email": "bob@example.com", "serial": " pin-1 ", "pin": "2468"}, app_auth)
    assert response.status_code == HTTPStatus.CREATED
    pin_device.refresh_from_db()
    assert pin_device.owner == connected_user


def test_email_is_matched_without_case(client, app_auth, connected_user, coded_device, code):
    response = claim(client, {"user_email": "Bob@Example.COM", "code": code.raw_code}, app_auth)
    assert response.status_code == HTTPStatus.CREATED


@pytest.mark.parametrize("email", ["bob@example.com", "nobody@example.com"])
def test_a_user_who_did_not_connect_this_application_is_refused(client, owner, app_auth, coded_device, code, email):
    Connection.objects.create(application=make_application(owner), user=UserFactory(email="bob@example.com"))
    response = claim(client, {"user_email": email, "code": code.raw_code}, app_auth)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["code"] == "user_not_connected"
    assert "user_email" in error["fields"]
    coded_device.refresh_from_db()
    assert coded_device.owner is None


def test_wrong_code_and_wrong_pin_read_the_same(client, app_auth, connected_user, pin_device):
    by_code = claim(client, {"user_email": "bob@example.com", "code": "AAAAA-BBBBB"}, app_auth)
    by_pin = claim(client, {"user_email": "bob@example.com", "serial": "PIN-1", "pin": "0000"}, app_auth)
    unknown = claim(client, {"user_email": "bob@example.com", "serial": "NO-SUCH", "pin": "0000"}, app_auth)
    assert by_code.status_code == by_pin.status_code == unknown.status_code == HTTPStatus.BAD_REQUEST
    assert by_code.json() == by_pin.json() == unknown.json()
    assert by_code.json()["error"]["message"] == INVALID_MESSAGE


def test_an_owned_device_is_already_claimed(client, other_owner, app_auth, connected_user, code):
    DeviceFactory(claim_code=code, owner=other_owner)
    response = claim(client, {"user_email": "bob@example.com", "code": code.raw_code}, app_auth)
    assert response.status_code == HTTPStatus.CONFLICT
    assert response.json()["error"]["code"] == "already_claimed"


def test_a_user_with_an_unverified_email_is_refused(client, application, app_auth, coded_device, code):
    user = UserFactory(email="new@example.com", verified=False)
    Connection.objects.create(application=application, user=user)
    response = claim(client, {"user_email": "new@example.com", "code": code.raw_code}, app_auth)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["error"]["code"] == "email_unverified"


def test_repeated_failures_end_in_429_with_retry_after(client, app_auth, connected_user, coded_device, code):
    for _ in range(10):
        claim(client, {"user_email": "bob@example.com", "code": "AAAAA-BBBBB"}, app_auth)
    response = claim(client, {"user_email": "bob@example.com", "code": code.raw_code}, app_auth)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "throttled"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "AAAAA-BBBBB"}, "user_email"),
        ({"user_email": "not-an-email", "code": "AAAAA-BBBBB"}, "user_email"),
        ({"user_email": "bob@example.com"}, "non_field_errors"),
        (
            {"user_email": "bob@example.com", "code": "AAAAA-BBBBB", "serial": "PIN-1", "pin": "2468"},
            "non_field_errors",
        ),
        ({"user_email": "bob@example.com", "serial": "PIN-1"}, "pin"),
        ({"user_email": "bob@example.com", "pin": "2468"}, "serial"),
        ({"user_email": "bob@example.com", "serial": "PIN-1", "pin": "2468", "serials": ["PIN-1"]}, "serials"),
        ({"user_email": "bob@example.com", "code": "x" * 65}, "code"),
        ({"user_email": "bob@example.com", "code": "AAAAA-BBBBB", "serials": "CODE-1"}, "serials"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, app_auth, connected_user, body, field):
    response = claim(client, body, app_auth)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert field in response.json()["error"]["fields"]


def test_needs_credentials(client, application, connected_user, coded_device, code):
    body = {"user_email": "bob@example.com", "code": code.raw_code}
    assert claim(client, body, {}).status_code == HTTPStatus.UNAUTHORIZED
    assert claim(client, body, basic_header(application.app_id, "wrong")).status_code == HTTPStatus.UNAUTHORIZED
    coded_device.refresh_from_db()
    assert coded_device.owner is None


def test_another_applications_credentials_do_not_reach_this_applications_users(
    client, other_application, connected_user, coded_device, code
):
    response = claim(client, {"user_email": "bob@example.com", "code": code.raw_code}, auth(other_application))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["code"] == "user_not_connected"


def test_is_throttled_per_application(client, app_auth, connected_user, settings):
    settings.API_THROTTLE_RATE = "1/minute"
    claim(client, {"user_email": "bob@example.com", "code": "AAAAA-BBBBB"}, app_auth)
    response = claim(client, {"user_email": "bob@example.com", "code": "AAAAA-BBBBB"}, app_auth)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Retry-After" in response


def test_the_schema_documents_both_conflicts_of_a_claim(client):
    schema = client.get("/api/schema/?format=json").json()
    conflict = schema["paths"]["/api/v1/claims"]["post"]["responses"]["409"]
    assert "already_yours" in conflict["description"] and "already_claimed" in conflict["description"]
    examples = conflict["content"]["application/json"]["examples"]
    assert {e["value"]["error"]["code"] for e in examples.values()} == {"already_claimed", "already_yours"}


def test_a_retried_claim_learns_it_went_through(client, application, app_auth, connected_user, coded_device, code):
    body = {"user_email": "bob@example.com", "code": code.raw_code}
    assert claim(client, body, app_auth).status_code == HTTPStatus.CREATED
    again = claim(client, body, app_auth)
    assert again.status_code == HTTPStatus.CONFLICT
    assert again.json()["error"]["code"] == "already_yours"
    assert AppLink.objects.filter(application=application, device=coded_device).exists()
