"""After every flow has run with DEBUG logging, no secret appears in a log record, in a page other
than the one that shows it once, or in an error message."""

import base64
import logging
from http import HTTPStatus

import pytest
from django.urls import reverse

from apps.models import AppLink
from devices.models import Device

from ..factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory


@pytest.fixture
def secrets_world(owner, other_owner):
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    pin_device = DeviceFactory(raw_pin="7394AB", claimable=True)
    application = ApplicationFactory(owner=owner)
    return {
        "code": code, "device": device, "pin_device": pin_device, "application": application,
        "secrets": {
            "claim code": code.raw_code,
            "factory key": device.raw_factory_key,
            "factory key (pin device)": pin_device.raw_factory_key,
            "PIN": "7394AB",
            "app Secret": application.raw_secret,
            "signing secret": application.raw_signing_secret,
        },
    }


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_no_secret_reaches_logs_pages_or_errors(client, owner, secrets_world, caplog):
    caplog.set_level(logging.DEBUG)
    world, seen = secrets_world, []
    device, application = world["device"], world["application"]
    client.force_login(owner)

    # Devices poll before and after the claim, with a wrong key too.
    for key in (device.raw_factory_key, "wrong-key"):
        seen.append(client.post("/device/v1/provision", {"attempt": 0}, content_type="application/json",
                                HTTP_AUTHORIZATION=_basic(device.serial, key)))
    # Claims: a wrong code, the right code, a wrong PIN, the right PIN.
    seen.append(client.post(reverse("claiming:claim"), {"method": "code", "code": "WRONG-CODE1"}))
    seen.append(client.post(reverse("claiming:claim"), {"method": "code", "code": world["code"].raw_code}))
    seen.append(client.post(reverse("claiming:claim"), {"method": "pin", "serial": world["pin_device"].serial,
                                                        "pin": "000000"}))
    seen.append(client.post(reverse("claiming:claim"), {"method": "pin", "serial": world["pin_device"].serial,
                                                        "pin": "7394AB"}))
    assert Device.objects.filter(owner=owner).count() == 2
    # The device gets its token (shown to the device once: the response is the show-once place).
    provisioned = client.post("/device/v1/provision", {"attempt": 1}, content_type="application/json",
                              HTTP_AUTHORIZATION=_basic(device.serial, device.raw_factory_key))
    token = provisioned.json()["credentials"]["token"]
    world["secrets"]["device token"] = token
    seen.append(client.post("/device/v1/checkin", {"values": {"t": 21}}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {token}"))
    seen.append(client.post("/device/v1/checkin", {"values": {"t": {"nested": 1}}}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {token}"))
    seen.append(client.post("/device/v1/checkin", {"values": {}}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {token}x"))
    # The integrator, right and wrong.
    AppLink.objects.create(application=application, device=device)
    for secret in (application.raw_secret, application.raw_secret[:-1]):
        seen.append(client.get("/api/v1/devices", HTTP_AUTHORIZATION=_basic(application.app_id, secret)))
    # The owner's pages.
    for url in (reverse("devices:list"), reverse("claiming:device", args=[device.pk]), reverse("apps:list"),
                reverse("apps:detail", args=[application.app_id])):
        seen.append(client.get(url))
    assert all(response.status_code < 500 for response in seen)

    log_text = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert caplog.records, "the flows should have logged something"
    for label, secret in world["secrets"].items():
        assert secret not in log_text, f"{label} appears in the logs"
        for response in seen:
            path = response.request["PATH_INFO"]
            if label == "signing secret" and path == reverse("apps:detail", args=[application.app_id]):
                continue  # its one place, by design: the application's page, for its owner
            assert secret.encode() not in response.content, f"{label} appears in {path}"


def test_the_signing_secret_is_shown_on_the_app_page_only_to_its_owner(client, other_owner, secrets_world):
    client.force_login(other_owner)
    application = secrets_world["application"]
    response = client.get(reverse("apps:detail", args=[application.app_id]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert application.raw_signing_secret.encode() not in response.content
