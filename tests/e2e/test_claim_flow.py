"""An owner scans a QR label while logged out, signs up, verifies, claims, and sees the device."""

import math
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.models import AppLink
from devices.models import Command, Device, Reading
from tests.factories import ApplicationFactory, ClaimCodeFactory, DeviceFactory, ProductFactory

PASSWORD = "plum-kettle-harbour-42"


@pytest.fixture
def labelled_device(transactional_db):
    product = ProductFactory(name="Thermo Pro", slug="thermo-pro")
    code = ClaimCodeFactory(raw_code="7K3QM-9XW2P")
    device = DeviceFactory(claim_code=code, product=product, serial="TP-2024-000417")
    # The OEM's managed application, offered on the claim form to every owner.
    ApplicationFactory(owner=None, managed=True, name="Thermo Cloud")
    return device, code


def _arrange_live_data(device):
    """What a device that checked in for a while looks like, for the device page."""
    now = timezone.now()
    Device.objects.filter(pk=device.pk).update(
        owned_since=now - timedelta(hours=6),
        name="Greenhouse",
        status="online",
        last_seen_at=now - timedelta(seconds=40),
        last_ip="203.0.113.24",
    )
    readings = Reading.objects.bulk_create(
        [
            Reading(
                device=device,
                recorded_at=now - timedelta(minutes=5 * (48 - i)),
                values={
                    "temperature": round(21 + 3 * math.sin(i / 7) + (i % 3) * 0.15, 2),
                    "humidity": round(64 - 6 * math.sin(i / 9), 1),
                },
            )
            for i in range(48)
        ]
    )
    Device.objects.filter(pk=device.pk).update(values={**readings[-1].values, "battery": 3.71, "door": "closed"})
    Command.objects.create(device=device, name="identify", expires_at=now + timedelta(hours=1))
    dashboard = ApplicationFactory(owner=Device.objects.get(pk=device.pk).owner, name="Greenhouse dashboard")
    AppLink.objects.create(device=device, application=dashboard)


def test_qr_sign_up_verify_claim(live_server, page, screenshot, labelled_device, viewport):
    device, code = labelled_device
    email = f"owner-{viewport}@example.com"

    page.goto(f"{live_server.url}/c/7k3qm9xw2p")
    assert "/accounts/login/" in page.url and "next=" in page.url
    page.locator("main").get_by_role("button", name="Create an account").click()
    assert "/accounts/signup/" in page.url and "next=" in page.url

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label(re.compile("Password \\(again\\)|Confirm password", re.I)).fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile("/accounts/confirm-email/"))

    body = mail.outbox[-1].body
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+", body).group(0)
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()

    page.wait_for_url(re.compile(r"/claim/\?code="))
    assert page.get_by_label("Claim code").input_value() == "7K3QM-9XW2P"
    assert page.get_by_text(device.serial).is_visible()
    assert page.get_by_label(re.compile("Link to an application")).first.is_visible()
    screenshot(page, "claim-form")

    page.get_by_role("button", name="Claim", exact=True).click()
    page.wait_for_url(re.compile("/devices/$"))
    assert page.get_by_role("link", name=device.serial).first.is_visible()
    assert Device.objects.get(pk=device.pk).owner.email == email

    _arrange_live_data(device)
    page.reload()
    assert page.get_by_text("Greenhouse").first.is_visible()
    screenshot(page, "device-list")

    page.get_by_role("link", name="Greenhouse").first.click()
    page.wait_for_url(re.compile(f"/devices/{device.pk}/$"))
    assert page.locator("svg path.chart-line").count() >= 2  # a chart per numeric value (issue 19: a path)
    screenshot(page, "device-detail")
