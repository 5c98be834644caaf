"""The ownership history is worded for whoever reads it. Ref: #27."""

import pytest
from django.urls import reverse

from claiming import services, transfers
from claiming.models import OwnershipEventKind
from claiming.selectors import ownership_history_for_device
from devices.models import Device
from tests.factories import DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db


def _transfer(device, giver, taker):
    _offer, token = transfers.transfer_offer(device=device, to_email=taker.email, actor=giver, ip=None)
    return transfers.transfer_accept(token=token, user=taker, ip="203.0.113.44")


def _transfer_lines(device, viewer):
    return [
        f"{event.get_kind_display()} {event.whom}"
        for event in ownership_history_for_device(device, viewer=viewer)
        if event.kind == OwnershipEventKind.TRANSFERRED
    ]


def test_the_new_owner_reads_transferred_to_you(client, owner):
    bob = UserFactory(email="bob@example.com")
    device = _transfer(DeviceFactory(owner=owner), owner, bob)
    client.force_login(bob)
    html = client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    assert 'Transferred</strong> <span class="muted">to you' in html
    assert 'Transferred</strong> <span class="muted">by you' not in html


def test_the_one_who_transferred_reads_where_it_went(owner):
    bob = UserFactory(email="bob@example.com")
    device = _transfer(DeviceFactory(owner=owner), owner, bob)
    device = _transfer(Device.objects.get(pk=device.pk), bob, owner)  # and back again
    assert _transfer_lines(device, owner) == ["Transferred to you", "Transferred to another account"]


def test_other_events_still_say_who_did_them(owner, staff):
    device = DeviceFactory()
    services.device_preclaim(devices=[device], email=owner.email, actor=staff)
    services.device_release(device=Device.objects.get(pk=device.pk), actor=owner, ip=None)
    lines = [f"{e.get_kind_display()} {e.whom}" for e in ownership_history_for_device(device, viewer=owner)]
    assert lines == ["Released by you", "Pre-claimed by support"]
