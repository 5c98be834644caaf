"""The device page as a console (issue 19), on a phone (390×844) and a desktop (1280×900): the
values under their product's fields, a chart per numeric field whose range switch changes it and
whose value shows under the pointer or finger, the command form built from the product's
declarations; no page wider than the viewport. Screenshots: docs/screenshots/device-console-*.png."""

import math
import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Command, CommandStatus, Device, Reading
from tests.factories import DeviceFactory, ProductFactory, ProductFieldFactory, UserFactory

from .conftest import SCREENSHOTS

CONSOLE_VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
}


@pytest.fixture
def console_page(browser, viewport):
    context = browser.new_context(**CONSOLE_VIEWPORTS[viewport])
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def thermostat(transactional_db):
    owner = UserFactory(email="alice@example.com", username="alice")
    product = ProductFactory(
        name="Thermo Pro", slug="thermo-pro",
        commands=["reboot", "identify", "set_interval",
                  {"name": "set_mode", "label": "Set mode", "help": "Heating mode.",
                   "params": [{"name": "mode", "type": "choice", "choices": ["eco", "comfort", "off"],
                               "required": True},
                              {"name": "boost", "type": "bool", "default": False}]}],
    )  # fmt: skip
    ProductFieldFactory(product=product, key="temperature", label="Temperature", unit="°C", decimals=1,
                        primary=True, expected_min=15, expected_max=25, order=1)  # fmt: skip
    ProductFieldFactory(product=product, key="humidity", label="Humidity", unit="%", decimals=0, primary=True,
                        expected_min=0, expected_max=100, order=2)  # fmt: skip
    ProductFieldFactory(product=product, key="heating", label="Heating", kind="boolean", order=3)
    ProductFieldFactory(product=product, key="mode", label="Mode", kind="states",
                        states={"0": "Eco", "1": "Comfort", "2": "Off"}, order=4)  # fmt: skip
    now = timezone.now()
    device = DeviceFactory(owner=owner, product=product, serial="TP-2024-000417")
    Device.objects.filter(pk=device.pk).update(
        name="Greenhouse", status="online", last_seen_at=now - timedelta(seconds=30),
        owned_since=now - timedelta(days=40),
        values={"temperature": 21.4, "humidity": 48, "heating": True, "mode": 1, "fw": "2.4.1"},
    )  # fmt: skip
    Reading.objects.bulk_create(
        [
            Reading(device=device, recorded_at=now - timedelta(minutes=m), values={
                "temperature": round(20 + 2 * math.sin(m / 230) + math.sin(m / 17) / 3, 2),
                "humidity": round(50 + 8 * math.cos(m / 400), 1),
            })
            for m in range(0, 8 * 24 * 60, 5)
        ]
    )  # fmt: skip
    Command.objects.create(device=device, name="reboot", status=CommandStatus.SUCCEEDED, expires_at=now)
    return owner, device


def _log_in(page, base, email, password):
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.locator("main").get_by_role("button", name="Log in").click()


def _no_wider_than_the_viewport(page):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_device_console(live_server, console_page, screenshot, thermostat, viewport, tmp_path):
    owner, device = thermostat
    page = console_page
    _log_in(page, live_server.url, owner.email, "correct horse battery staple")
    page.wait_for_url(re.compile("/devices/"))
    page.goto(f"{live_server.url}/devices/{device.pk}/")

    values = page.locator("section.values-panel")
    assert "21.4\xa0°C" in values.inner_text() and "Comfort" in values.inner_text() and "on" in values.inner_text()
    _no_wider_than_the_viewport(page)

    # The value under the pointer or finger.
    chart = page.locator("svg[aria-labelledby^='chart-temperature-t']")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    if viewport == "phone":
        chart.tap(position={"x": box["width"] * 0.6, "y": box["height"] / 2})
    else:
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    readout = page.locator("figure:has(svg[aria-labelledby^='chart-temperature-t']) .chart-readout")
    assert re.search(r"\d\d \w{3} \d\d:\d\d · \d+\.\d\xa0°C", readout.inner_text())

    # The range switch changes the chart.
    before = page.locator("#chart-temperature-d").text_content()
    page.get_by_role("link", name="7d").click()
    page.wait_for_url(re.compile(r"range=7d"))
    after = page.locator("#chart-temperature-d").text_content()
    assert "the last 24 hours" in before and "the last 7 days" in after
    _no_wider_than_the_viewport(page)
    page.get_by_role("link", name="24h").click()
    page.wait_for_url(re.compile(r"range=24h"))
    screenshot(page, "device-console")

    # A command from its own form: typed fields, then Pending in the list.
    page.locator("#command-set_mode summary").click()
    page.get_by_label("Mode").select_option("comfort")
    page.get_by_label("Boost").check()
    page.locator("#command-set_mode").get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"#commands$"))
    assert page.get_by_text("Command “set_mode” queued").is_visible()
    assert Command.objects.get(name="set_mode").params == {"mode": "comfort", "boost": True}
    page.locator("#command-identify summary").click()
    page.locator("#command-set_mode summary").click()
    page.locator("#commands").scroll_into_view_if_needed()
    _no_wider_than_the_viewport(page)
    folder = SCREENSHOTS if os.getenv("SAVE_SCREENSHOTS") == "1" else tmp_path  # as the screenshot fixture
    page.locator("#commands").screenshot(path=str(folder / f"device-commands-{viewport}.png"))
