"""The device page is devices', composed of the panels each app registers (`devices/panels.py`)."""

import re
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone

from apps.models import AppLink
from claiming import transfers
from claiming.models import OwnershipEvent, OwnershipEventKind
from devices import access, panels
from devices.models import Command, Reading
from tests.factories import ApplicationFactory, DeviceFactory, ProductFieldFactory

pytestmark = pytest.mark.django_db

# Session, user, the device (with its product), the product's declared fields (read once for the
# values and charts panels), readings, commands, applications linked and linkable, the open
# transfer, the ownership history; the sharing panels' shares, pending invitations, live support
# grant and access history.
PAGE_QUERIES = 14
SECTIONS = [
    "summary-h", "values-h", "history-h", "apps-h", "commands-h", "pin-h", "ownership-h",
    "share-invite-h", "share-access-h", "support-grant-h", "access-audit-h",
]  # fmt: skip


def _busy(owner, *, links, commands):
    device = DeviceFactory(owner=owner, values={"temperature": 21.5}, status="online")
    now = timezone.now()
    Reading.objects.bulk_create(
        [Reading(device=device, recorded_at=now - timedelta(minutes=i), values={"temperature": i}) for i in range(20)]
    )
    for _ in range(commands):
        Command.objects.create(device=device, name="reboot", expires_at=now + timedelta(hours=1))
    for _ in range(links):
        AppLink.objects.create(device=device, application=ApplicationFactory(owner=owner))
    ApplicationFactory(owner=owner)  # one more to offer under "Add to app"
    OwnershipEvent.objects.create(device=device, kind=OwnershipEventKind.CLAIMED, actor=owner, owner=owner)
    transfers.transfer_offer(device=device, to_email="bob@example.com", actor=owner, ip=None)
    return device


@pytest.mark.parametrize(("links", "commands"), [(0, 0), (1, 1), (5, 12)])
def test_the_composed_page_is_a_fixed_number_of_queries(owner_client, owner, links, commands,
                                                         django_assert_num_queries):
    device = _busy(owner, links=links, commands=commands)
    url = reverse("devices:detail", args=[device.pk])
    with django_assert_num_queries(PAGE_QUERIES):
        response = owner_client.get(url)
    assert response.status_code == HTTPStatus.OK
    assert "Transfer offered to" in response.content.decode()


def test_the_page_is_at_its_path_and_served_by_devices(owner_client, owned_device):
    url = reverse("devices:detail", args=[owned_device.pk])
    assert url == f"/devices/{owned_device.pk}/"
    assert owner_client.get(url).resolver_match.func.__module__ == "devices.device_page"


def test_panels_stand_in_their_order(owner_client, owned_device):
    html = owner_client.get(reverse("devices:detail", args=[owned_device.pk])).content.decode()
    assert re.findall(r'<h2 id="([\w-]+)"', html) == SECTIONS
    head = html[html.index('<div class="actions">') : html.index('<div class="detail-grid">')]
    assert re.findall(r'role="button"[^>]*>([^<]+)<', head) == ["Rename", "Transfer", "Reset ownership"]
    # Two sections a row, the charts and the pending invitations (none here) alone.
    assert html.count('<div class="detail-grid">') == 5


def test_each_app_registers_its_own_panels():
    names = {panel.name: panel.template.split("/")[0] for panel in panels.registered()}
    assert names == {
        "rename": "devices", "connection": "devices", "values": "devices", "charts": "devices",
        "commands": "devices", "applications": "apps", "transfer": "claiming", "reset": "claiming",
        "transfer-notice": "claiming", "pin": "claiming", "ownership": "claiming",
        "support-notice": "devices", "share-invite": "devices", "my-access": "devices", "share-access": "devices",
        "share-invitations": "devices", "support-grant": "devices", "access-audit": "devices",
    }  # fmt: skip


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(panels, "_panels", dict(panels._panels))
    return panels


def test_a_registered_panel_takes_its_place(owner_client, owned_device, registry):
    registry.register(
        "extra", "devices/_status_badge.html", order=650, context=lambda request, device, **overrides: {}
    )
    html = owner_client.get(reverse("devices:detail", args=[owned_device.pk])).content.decode()
    after_pin = html[html.index('id="pin-h"') : html.index('id="ownership-h"')]
    assert 'class="badge badge-never_seen"' in after_pin
    # The PIN and the new one share a row; the history pairs with the invitation form, who has access
    # stands alone before the (wide) pending invitations.
    assert html.count('<div class="detail-grid">') == 6


def test_a_panel_is_shown_only_to_who_has_its_capability(owner_client, owned_device, monkeypatch):
    monkeypatch.setattr(panels.access, "may", lambda user, device, capability: capability == access.SEE)
    html = owner_client.get(reverse("devices:detail", args=[owned_device.pk])).content.decode()
    assert re.findall(r'<h2 id="([\w-]+)"', html) == [
        "summary-h", "values-h", "history-h", "commands-h", "ownership-h"
    ]  # fmt: skip
    assert "Reset ownership" not in html and "Send command" not in html


def test_two_panels_setting_one_key_is_an_error(owner_client, owned_device, registry):
    registry.register("clash", "devices/_status_badge.html", order=900, context=lambda *args, **kwargs: {"values": []})
    with pytest.raises(ImproperlyConfigured, match="'values'"):
        owner_client.get(reverse("devices:detail", args=[owned_device.pk]))


def test_a_form_error_renders_the_page_with_the_bound_form(owner_client, owned_device):
    url = reverse("claiming:device-pin", args=[owned_device.pk])
    response = owner_client.post(url, {"pin": "1", "claimable": "on"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.context["pin_form"].errors["pin"]
    assert re.findall(r'<h2 id="([\w-]+)"', response.content.decode()) == SECTIONS


# --- the values panel: the product's fields (issue 19) ---------------------------------------------


def test_values_show_under_their_declared_fields_and_the_rest_raw_below(owner_client, owner):
    device = DeviceFactory(
        owner=owner,
        values={"temperature": 21.456, "heater": True, "mode": 1, "zz_debug": "x1"},
        last_seen_at=timezone.now(),
    )
    ProductFieldFactory(product=device.product, key="temperature", label="Temperature", unit="°C", primary=True)
    ProductFieldFactory(product=device.product, key="heater", label="Heater", kind="boolean", order=1)
    ProductFieldFactory(product=device.product, key="mode", label="Mode", kind="states", states={"1": "Heating"},
                        order=2)  # fmt: skip
    html = owner_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    panel = html[html.index('id="values-h"'):html.index('id="history-h"')]
    assert re.search(r"Temperature</div>\s*<div class=\"field-value\">21.5\xa0°C", panel)
    assert re.search(r"Heater</div>\s*<div class=\"field-value\">on", panel)
    assert re.search(r"Mode</div>\s*<div class=\"field-value\">Heating", panel)
    assert "Reported at the last check-in" in panel
    assert panel.index("Other values") < panel.index("zz_debug") and "heater</td>" not in panel
