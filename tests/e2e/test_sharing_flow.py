"""Sharing in a browser, on a phone and a desktop (issue 18): the owner shares from the device list,
the invited person signs up from the emailed link and accepts, sees the device marked shared, is
refused an owner action with a message, and loses the device when the owner revokes it."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from devices.models import Device, Share
from tests.factories import DeviceFactory, ProductFactory, UserFactory

from .conftest import VIEWPORTS

PASSWORD = "plum-kettle-harbour-42"


@pytest.fixture
def owned(transactional_db):
    owner = UserFactory(email="alice@example.com", username="alice")
    product = ProductFactory(name="Thermo Pro", slug="thermo-pro")
    device = DeviceFactory(owner=owner, product=product, serial="TP-2024-000417")
    Device.objects.filter(pk=device.pk).update(
        name="Greenhouse", status="online", last_seen_at=timezone.now() - timedelta(seconds=30),
        owned_since=timezone.now() - timedelta(days=3), values={"temperature": 21.4},
    )  # fmt: skip
    DeviceFactory(owner=owner, product=product, serial="TP-2024-000418")
    return owner, device


def _log_in(page, base, email, password):
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.locator("main").get_by_role("button", name="Log in").click()


def test_share_accept_as_a_new_user_be_refused_and_revoked(live_server, browser, page, screenshot, owned, viewport):
    owner, device = owned
    invitee = f"ivy-{viewport}@example.com"

    # The owner ticks the device in their list and shares it.
    _log_in(page, live_server.url, owner.email, "correct horse battery staple")
    page.wait_for_url(re.compile("/devices/"))
    page.get_by_label("Select Greenhouse").check()
    page.locator("#share-selected-email").fill(invitee)
    screenshot(page, "share-selected")
    page.get_by_role("button", name="Share selected").click()
    assert page.get_by_text(f"We emailed {invitee}").is_visible()

    # The invited person, in another browser, opens the link and signs up.
    # The email's link names PORTAL_BASE_URL; the test server listens elsewhere.
    path = re.search(r"https?://[^/\s]+(/shares/\S+)", mail.outbox[-1].body).group(1)
    other = browser.new_context(**VIEWPORTS[viewport])
    other.set_default_timeout(15_000)
    guest = other.new_page()
    guest.goto(live_server.url + path)
    assert "/accounts/login/" in guest.url and "next=" in guest.url
    guest.locator("main").get_by_role("button", name="Create an account").click()
    guest.get_by_label("Email").fill(invitee)
    guest.get_by_label("Password", exact=True).fill(PASSWORD)
    guest.get_by_label(re.compile("Password \\(again\\)|Confirm password", re.I)).fill(PASSWORD)
    guest.locator("main").get_by_role("button", name="Sign up").click()
    guest.wait_for_url(re.compile("/accounts/confirm-email/"))
    confirm = re.search(r"https?://\S+/accounts/confirm-email/\S+", mail.outbox[-1].body).group(0)
    guest.goto(confirm)
    guest.get_by_role("button", name="Confirm").click()

    # Back on the invitation: product, serial and inviter, no nickname; accept.
    guest.wait_for_url(re.compile("/shares/"))
    assert guest.get_by_text(device.serial).is_visible() and guest.get_by_text(owner.email).first.is_visible()
    assert "Greenhouse" not in guest.content()
    screenshot(guest, "invitation")
    guest.get_by_role("button", name="Accept").click()
    guest.wait_for_url(re.compile(f"/devices/{device.pk}/"))

    # The device is in their list, marked shared, with their role.
    guest.goto(f"{live_server.url}/devices/")
    assert guest.get_by_text(f"shared by {owner.email}").is_visible()
    screenshot(guest, "shared-device-list")

    # Their device page: the device with its owner named, and nothing of the owner's own.
    guest.goto(f"{live_server.url}/devices/{device.pk}/")
    assert guest.get_by_role("heading", name="Shared with you").is_visible()
    assert guest.get_by_text(owner.email).first.is_visible()
    assert guest.get_by_role("heading", name="Who has access").count() == 0
    screenshot(guest, "shared-device")

    # An owner action is refused with a message.
    response = guest.goto(f"{live_server.url}/devices/{device.pk}/rename/")
    assert response.status == 403
    assert guest.get_by_text("Only the owner of this device can").is_visible()

    # The owner sees them under "Who has access" on the device page and revokes; the device leaves
    # their list.
    page.goto(f"{live_server.url}/devices/{device.pk}/")
    who = page.locator("#sharing-access")
    assert who.get_by_text(invitee, exact=True).is_visible()
    screenshot(page, "sharing-panel")
    who.get_by_role("button", name="Revoke").click()
    page.wait_for_url(re.compile(f"/devices/{device.pk}/"))
    assert not Share.objects.filter(device=device).exists()
    guest.goto(f"{live_server.url}/devices/")
    assert device.serial not in guest.content()
    assert guest.goto(f"{live_server.url}/devices/{device.pk}/").status == 404
    other.close()
