"""The live console in a browser, on a phone (390×844) and a desktop (1280×900): a check-in made
through the device protocol shows on the open device page and device list without a reload; a
command sent from the page's form shows Pending, then its outcome once the device acknowledges it;
no page is wider than the screen; the phone's menu opens and closes. Screenshots of the device page
and the list, light and dark."""

import base64
import json
import math
import os
import urllib.request
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.models import Delivery, DeliveryStatus
from devices.models import Device, ProductField, Reading
from tests.factories import ApplicationFactory, DeviceFactory, ProductFactory, UserFactory

from .conftest import SCREENSHOTS

SIZES = {
    "phone": {
        "viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2,
    },
    "desktop": {"viewport": {"width": 1280, "height": 900}},
}
WITHIN = 5_000  # ms: a change shows within 5 s


@pytest.fixture
def console(transactional_db):
    owner = UserFactory(email="maya@example.com", username="maya")
    product = ProductFactory(name="Thermo Pro", slug="thermo-pro", commands=["identify", "reboot", "set_interval"])
    device = DeviceFactory(owner=owner, product=product, serial="TP-2024-000417")
    cellar = DeviceFactory(owner=owner, product=product, serial="TP-2024-000388", name="Cellar")
    ProductField.objects.create(product=product, key="temperature", label="Temperature", unit="°C", kind="number",
                                decimals=2, primary=True)  # fmt: skip
    now = timezone.now()
    Device.objects.filter(pk=device.pk).update(name="Greenhouse", owned_since=now - timedelta(hours=6))
    Reading.objects.bulk_create(
        [
            Reading(device=device, recorded_at=now - timedelta(minutes=5 * (48 - i)),
                    values={"temperature": round(21 + 3 * math.sin(i / 7), 2),
                            "humidity": round(64 - 6 * math.sin(i / 9), 1)})
            for i in range(48)
        ]
    )  # fmt: skip
    application = ApplicationFactory(owner=owner, name="Greenhouse dashboard", callback_url="https://hooks.example.com/in")
    Delivery.objects.bulk_create(
        [Delivery(application=application, event_type="device.data", status=status, attempts=1, last_status_code=code)
         for status, code in [(DeliveryStatus.SUCCEEDED, 200)] * 30 + [(DeliveryStatus.FAILED, 503)] * 3]
    )  # fmt: skip
    return owner, device, application, cellar


class Firmware:
    """What the reference agent does, over HTTP against the live server."""

    def __init__(self, base, device):
        self.base = base
        basic = base64.b64encode(f"{device.serial}:{device.raw_factory_key}".encode()).decode()
        body = self.call("POST", "/device/v1/provision", {"attempt": 0}, f"Basic {basic}")
        self.auth = f"Bearer {body['credentials']['token']}"

    def call(self, method, path, body=None, auth=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", auth or self.auth)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def checkin(self, values):
        return self.call("POST", "/device/v1/checkin", {"values": values})

    def commands(self):
        return self.call("GET", "/device/v1/commands")["commands"]

    def ack(self, command_id, status, result):
        return self.call("POST", f"/device/v1/commands/{command_id}", {"status": status, "result": result})


def _context(browser, live_server, owner, size, scheme="light"):
    client = Client()
    client.force_login(owner)
    context = browser.new_context(**SIZES[size], color_scheme=scheme)
    context.set_default_timeout(15_000)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    return context


def _fits(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def _save(page, name):
    folder = SCREENSHOTS if os.getenv("SAVE_SCREENSHOTS") == "1" else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("size", list(SIZES))
def test_a_check_in_and_a_command_show_without_a_reload(live_server, browser, console, size):
    owner, device, application, cellar = console
    firmware = Firmware(live_server.url, device)
    firmware.checkin({"temperature": 21.5, "humidity": 61.0})
    context = _context(browser, live_server, owner, size)
    page = context.new_page()

    page.goto(f"{live_server.url}/devices/{device.pk}/")
    page.evaluate("window.__notReloaded = true")
    assert page.locator('[data-live="values"]').get_by_text("21.5").is_visible()
    assert _fits(page)

    firmware.checkin({"temperature": 24.25, "humidity": 58.5})
    page.locator('[data-live="values"]').get_by_text("24.25").wait_for(timeout=WITHIN)
    assert page.evaluate("window.__notReloaded === true")

    # Someone typing in a command's form keeps what they typed, and the focus, through a refresh.
    page.locator("#command-set_interval summary").click()
    seconds = page.locator("#command-set_interval input[name='set_interval-params.seconds']")
    seconds.click()
    seconds.type("45")
    firmware.checkin({"temperature": 25.5, "humidity": 57.0})
    page.locator('[data-live="values"]').get_by_text("25.5").wait_for(timeout=WITHIN)
    assert seconds.input_value() == "45"
    assert page.evaluate("document.activeElement.name") == "set_interval-params.seconds"
    seconds.fill("")

    # A command's form posts (a page load, as without JavaScript); what follows comes by itself.
    page.locator("#command-identify summary").click()
    page.locator("#command-identify").get_by_role("button", name="Send").click()
    page.wait_for_url(f"**/devices/{device.pk}/#commands")
    commands = page.locator('[data-live="commands"]')
    assert commands.get_by_text("Pending").first.is_visible()
    page.evaluate("window.__notReloaded = true")
    [command] = firmware.commands()
    firmware.ack(command["id"], "succeeded", {"blinked": 3})
    commands.get_by_text("Succeeded").first.wait_for(timeout=WITHIN)
    assert commands.get_by_text('{"blinked": 3}').first.is_visible()  # the result, as the device reported it
    assert page.evaluate("window.__notReloaded === true")

    page.goto(f"{live_server.url}/devices/")
    page.evaluate("window.__notReloaded = true")
    row = page.locator("tr", has_text="Cellar")
    assert row.get_by_text("Never seen").is_visible()
    Firmware(live_server.url, cellar).checkin({"temperature": 12.0})
    row.get_by_text("Online").wait_for(timeout=WITHIN)
    assert row.get_by_text("12.00\u00a0°C").is_visible()  # its primary value, live too
    assert page.evaluate("window.__notReloaded === true")
    assert _fits(page)

    page.goto(f"{live_server.url}/apps/{application.app_id}/")
    assert page.locator(".delivery-table tbody tr").count() == 25
    assert _fits(page)
    page.get_by_role("link", name="Older →").click()
    assert page.locator(".delivery-table tbody tr").count() == 8
    assert _fits(page)
    context.close()


def test_the_phone_menu_opens_and_closes(live_server, browser, console):
    owner, *_ = console
    context = _context(browser, live_server, owner, "phone")
    page = context.new_page()
    page.goto(f"{live_server.url}/devices/")
    menu = page.get_by_role("button", name="Menu")
    applications = page.get_by_role("link", name="Applications")
    assert menu.get_attribute("aria-expanded") == "false" and not applications.is_visible()
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true" and applications.is_visible()
    page.keyboard.press("Escape")
    assert menu.get_attribute("aria-expanded") == "false" and not applications.is_visible()
    menu.focus()
    page.keyboard.press("Enter")
    assert applications.is_visible()
    applications.click()
    page.wait_for_url("**/apps/")
    assert _fits(page)
    context.close()

    desktop = _context(browser, live_server, owner, "desktop").new_page()
    desktop.goto(f"{live_server.url}/devices/")
    assert not desktop.get_by_role("button", name="Menu").is_visible()
    assert desktop.get_by_role("link", name="Applications").is_visible()
    desktop.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_screenshots_of_the_console(live_server, browser, console, size, scheme):
    owner, device, *_ = console
    firmware = Firmware(live_server.url, device)
    firmware.checkin({"temperature": 22.8, "humidity": 59.4, "battery": 3.71, "door": "closed"})
    command = firmware.call("GET", "/device/v1/commands")  # none yet
    assert command["commands"] == []
    context = _context(browser, live_server, owner, size, scheme)
    page = context.new_page()
    page.goto(f"{live_server.url}/devices/{device.pk}/")
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert (background == "rgb(255, 255, 255)") == (scheme == "light"), background
    assert _fits(page)
    _save(page, f"console-device-{scheme}-{size}")
    page.goto(f"{live_server.url}/devices/")
    assert _fits(page)
    _save(page, f"console-list-{scheme}-{size}")
    context.close()
