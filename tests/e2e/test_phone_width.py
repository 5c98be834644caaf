"""Every owner page, filled as a busy owner's would be, fits a phone's screen: nothing scrolls sideways."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.models import AppLink, Delivery, DeliveryStatus
from apps.selectors import delivery_page_for_application
from claiming.models import OwnershipEvent, OwnershipEventKind
from devices.models import Command, CommandStatus, Device, DeviceEvent, Reading
from tests.factories import ApplicationFactory, DeviceFactory, ProductFactory, UserFactory
from tests.hardening.test_access_matrix import ALL_URLS, APP_PAGES, DEVICE_PAGES, OWNER_PAGES

LONG = "Greenhouse-north-corner-sensor-with-a-very-long-name-nobody-would-ever-shorten"
ACCOUNT_PAGES = ["account_email", "account_change_password", "account_logout"]


@pytest.fixture
def busy_owner(transactional_db):
    owner = UserFactory(email="a-rather-long-address.for-an-owner@subdomain.example.com", username="busy")
    product = ProductFactory(
        name="Thermo Pro Max Ultra Outdoor Edition", commands=["reboot", "identify", "set_interval"]
    )
    device = DeviceFactory(owner=owner, product=product, serial="TP-2024-000417-EXTENDED-SERIAL-NUMBER")
    now = timezone.now()
    Device.objects.filter(pk=device.pk).update(
        name=LONG,
        owned_since=now - timedelta(days=2),
        status="online",
        last_seen_at=now,
        last_ip="2001:db8:85a3:1234:5678:8a2e:370:7334",
        values={"temperature": 21.5, "firmware_build_identifier": "x" * 90, "huge": int("9" * 120)},
    )
    Reading.objects.bulk_create(
        [Reading(device=device, recorded_at=now - timedelta(minutes=i), values={"temperature": 20 + i % 5})
         for i in range(30)]
    )
    for i, status in enumerate([CommandStatus.PENDING, CommandStatus.SUCCEEDED, CommandStatus.FAILED]):
        Command.objects.create(
            device=device, name="set_interval", params={"seconds": 600 + i, "note": "y" * 60}, status=status,
            result={"detail": "z" * 80}, expires_at=now + timedelta(hours=1), sent_by_app="app_" + "q" * 30,
        )
    OwnershipEvent.objects.create(device=device, kind=OwnershipEventKind.CLAIMED, actor=owner, owner=owner)
    application = ApplicationFactory(
        owner=owner, name="Dashboard-" + "w" * 60, callback_url="https://hooks.example.com/" + "p" * 150
    )
    AppLink.objects.create(device=device, application=application)
    event = DeviceEvent.objects.create(device=device, type="device.data", created_at=now, data={"values": {}})
    for status in DeliveryStatus.values:
        Delivery.objects.create(
            application=application, event=event if status == DeliveryStatus.PENDING else None,
            event_type="device.data", status=status, attempts=3, last_status_code=503, last_error="e" * 250,
        )
    # More than a page of deliveries: the log's second page is a page of its own.
    Delivery.objects.bulk_create(
        [Delivery(application=application, event_type="device.data", status=DeliveryStatus.SUCCEEDED,
                  attempts=1, last_status_code=200, last_latency_ms=85) for _ in range(30)]
    )
    return owner, device, application


def _owner_page_urls(device, application):
    urls = []
    for route, _namespace, name in ALL_URLS:
        if name not in DEVICE_PAGES | APP_PAGES | OWNER_PAGES:
            continue
        kwargs = {}
        if "<uuid:pk>" in route:
            kwargs["pk"] = device.pk
        if "<str:app_id>" in route:
            kwargs["app_id"] = application.app_id
        if "<int:delivery_id>" in route or "<uuid:command_id>" in route:
            continue  # actions only
        if name.endswith("-live"):
            continue  # a live page's fragments (JSON), not a page
        urls.append(reverse(name, kwargs=kwargs))
    older = delivery_page_for_application(application).older
    urls.append(reverse("apps:detail", args=[application.app_id]) + f"?before={older}")
    return urls + [reverse(name) for name in ACCOUNT_PAGES]


@pytest.mark.parametrize("viewport", ["phone"], indirect=True)
def test_no_owner_page_is_wider_than_a_phone(live_server, browser, page, busy_owner, screenshot):
    owner, device, application = busy_owner
    client = Client()
    client.force_login(owner)
    session = client.cookies["sessionid"].value
    page.context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
    checked, too_wide = [], []
    for url in _owner_page_urls(device, application):
        answer = client.get(url)
        if answer.status_code == 405:
            continue  # a POST-only action
        if not answer["Content-Type"].startswith("text/html"):
            continue  # a download (the readings' CSV), no page to fit
        response = page.goto(live_server.url + url)
        assert response.ok, (url, response.status)
        width = page.evaluate("document.documentElement.scrollWidth")
        # Long words may wrap anywhere on a phone, but a button's label only between its words.
        broken = page.evaluate(
            "[...document.querySelectorAll('main button, main [role=button]')]"
            ".filter(b => getComputedStyle(b).overflowWrap === 'anywhere').map(b => b.textContent.trim())"
        )
        assert broken == [], (url, broken)
        checked.append(url)
        screenshot(page, "owner-page-" + url.strip("/").replace("/", "-")[:40])
        if width > 360:
            too_wide.append((url, width))
    assert len(checked) >= 12, checked
    assert too_wide == [], "\n".join(f"{url}: {width}px" for url, width in too_wide)
