"""Status emails for people a device is shared with (issue 18): they hear about it once they
subscribe, as its owner does by default, and unsubscribe in one click."""

import re
from datetime import UTC, datetime
from http import HTTPStatus

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devices import sharing
from devices.models import Device, DeviceStatus, NotificationPreference, Share
from devices.notifications import notification_preference_set
from devices.stale import devices_mark_stale
from tests.factories import DeviceFactory, ProductFactory, ShareFactory, SupportGrantFactory

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def device(clock, owner, viewer, operator):
    product = ProductFactory(slug="thermo", name="Thermo", offline_after=600)
    device = DeviceFactory(
        owner=owner, product=product, name="Hall", status=DeviceStatus.ONLINE, last_seen_at=timezone.now()
    )
    ShareFactory(device=device, user=viewer, role="viewer")
    ShareFactory(device=device, user=operator, role="operator")
    return device


def subscribe(user, device, *, offline=True, online=True):
    notification_preference_set(user=user, device=device, offline=offline, online=online)


def go_offline(clock):
    clock.shift(601)
    return devices_mark_stale()


def sent_to(address):
    return [m for m in mail.outbox if m.to == [address]]


def test_people_it_is_shared_with_hear_nothing_until_they_subscribe(clock, device, owner, viewer, operator):
    go_offline(clock)
    assert len(sent_to(owner.email)) == 1
    assert sent_to(viewer.email) == [] and sent_to(operator.email) == []


def test_a_subscribed_viewer_hears_it_went_offline(clock, device, owner, viewer):
    subscribe(viewer, device)
    go_offline(clock)
    [email] = sent_to(viewer.email)
    assert device.serial in email.body and reverse("devices:detail", args=[device.pk]) in email.body
    assert len(sent_to(owner.email)) == 1


def test_an_owner_who_opted_out_does_not_silence_a_subscriber(clock, device, owner, operator):
    notification_preference_set(user=owner, offline=False, online=False)
    subscribe(operator, device)
    go_offline(clock)
    assert sent_to(owner.email) == [] and len(sent_to(operator.email)) == 1


def test_a_subscriber_hears_it_back_online_too(clock, device, viewer):
    subscribe(viewer, device)
    go_offline(clock)
    mail.outbox.clear()
    clock.shift(3600)
    Device.objects.filter(pk=device.pk).update(status=DeviceStatus.ONLINE, last_seen_at=timezone.now())
    devices_mark_stale()
    [email] = sent_to(viewer.email)
    assert "back online" in email.subject


def test_a_subscription_to_only_offline_is_kept(clock, device, viewer):
    subscribe(viewer, device, offline=False, online=True)
    go_offline(clock)
    assert sent_to(viewer.email) == []


def test_the_all_devices_choice_of_a_shared_person_does_not_subscribe_them(clock, device, viewer):
    notification_preference_set(user=viewer, offline=True, online=True)
    go_offline(clock)
    assert sent_to(viewer.email) == []


def test_after_a_revoke_the_former_subscriber_hears_nothing(clock, device, owner, viewer):
    subscribe(viewer, device)
    sharing.share_revoke(share=Share.objects.get(user=viewer), actor=owner, ip=None)
    go_offline(clock)
    assert sent_to(viewer.email) == []


def test_a_subscriber_unsubscribes_in_one_click(clock, device, viewer):
    subscribe(viewer, device)
    go_offline(clock)
    [email] = sent_to(viewer.email)
    path = re.search(r"https?://[^/\s]+(/devices/notifications/unsubscribe/\S+/)", email.body).group(1)
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert Client().post(path).status_code == HTTPStatus.OK  # no session, as a mail client posts it
    assert not NotificationPreference.objects.filter(user=viewer, device=device).exists()


def test_the_settings_page_of_a_shared_device_offers_a_subscription(device, viewer):
    client = Client()
    client.force_login(viewer)
    url = reverse("devices:notifications-device", args=[device.pk])
    page = client.get(url)
    assert page.status_code == HTTPStatus.OK
    assert b"shared with you" in page.content and b"Same as all my devices" not in page.content
    assert b'name="offline"' in page.content and b"checked" not in page.content
    response = client.post(url, {"offline": "on"})
    assert response.status_code == HTTPStatus.FOUND
    preference = NotificationPreference.objects.get(user=viewer, device=device)
    assert preference.offline and not preference.online
    client.post(url, {})
    assert not NotificationPreference.objects.filter(user=viewer, device=device).exists()


def test_support_is_not_a_recipient(device, support, owner):
    SupportGrantFactory(device=device, granted_by=owner)
    client = Client()
    client.force_login(support)
    response = client.get(reverse("devices:notifications-device", args=[device.pk]))
    assert response.status_code == HTTPStatus.FORBIDDEN
