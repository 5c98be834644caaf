"""Device status emails (devices.notifications) and the owner's notification pages."""

import re
import smtplib
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.urls import reverse
from django.utils import timezone

from devices import notifications
from devices.models import Device, DeviceStatus, NotificationPreference, NotificationState
from devices.notifications import notification_preference_set, unsubscribe_token
from devices.stale import devices_mark_stale
from tests.factories import DeviceFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SETTINGS_URL = reverse("devices:notifications")


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def product():
    return ProductFactory(slug="thermo", name="Thermo", offline_after=600)


def seen_now(owner, product, **kwargs):
    """A device that checked in just now (moves with the frozen clock)."""
    return DeviceFactory(
        owner=owner, product=product, status=DeviceStatus.ONLINE, last_seen_at=timezone.now(), **kwargs
    )


def check_in(*devices):
    """What a check-in does to status (the protocol itself is tested elsewhere)."""
    ids = [d.pk for d in devices]
    Device.objects.filter(pk__in=ids).update(status=DeviceStatus.ONLINE, last_seen_at=timezone.now())


def sweep_after(clock, seconds):
    clock.shift(seconds)
    return devices_mark_stale()


def sent_to(address):
    return [m for m in mail.outbox if m.to == [address]]


# --- grouping ----------------------------------------------------------------------------------


def test_one_email_per_owner_lists_every_device_that_went_offline(clock, owner, other_owner, product):
    mine = [seen_now(owner, product, name=f"Room {i}") for i in range(3)]
    seen_now(other_owner, product, name="Garage")

    sweep_after(clock, 601)

    assert len(mail.outbox) == 2
    [email] = sent_to(owner.email)
    assert email.subject == "[Device Owner Portal] 3 devices are offline"
    for device in mine:
        assert device.serial in email.body
        assert reverse("devices:detail", args=[device.pk]) in email.body
    assert "Garage" not in email.body
    assert sent_to(other_owner.email)[0].subject == "[Device Owner Portal] Garage is offline"


def test_the_email_comes_in_text_and_html_with_settings_and_unsubscribe_links(clock, owner, product):
    seen_now(owner, product, name="Kitchen")

    sweep_after(clock, 601)

    [email] = mail.outbox
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    token = unsubscribe_token(owner)
    unsubscribe = reverse("devices:notifications-unsubscribe", args=[token])
    for part in (email.body, html):
        assert "Kitchen" in part
        assert "last seen 2 Mar 2026, 09:00 UTC" in part
        assert SETTINGS_URL in part
        assert unsubscribe in part
    assert email.extra_headers["List-Unsubscribe"].endswith(f"{unsubscribe}>")
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unowned_devices_are_nobody_s_email(clock, product):
    DeviceFactory(product=product, status=DeviceStatus.ONLINE, last_seen_at=START)

    assert sweep_after(clock, 601) == 1
    assert mail.outbox == []


def test_back_online_is_mailed_grouped(clock, owner, product):
    devices = [seen_now(owner, product) for _ in range(2)]
    sweep_after(clock, 601)
    mail.outbox.clear()

    clock.shift(3600)
    check_in(*devices)
    devices_mark_stale()

    [email] = mail.outbox
    assert email.subject == "[Device Owner Portal] 2 devices are back online"
    assert all(d.serial in email.body for d in devices)


def test_offline_and_back_online_in_one_email(clock, owner, product):
    back = seen_now(owner, product, name="Back")
    sweep_after(clock, 601)
    clock.shift(3000)
    gone = seen_now(owner, product, name="Gone")
    mail.outbox.clear()

    clock.shift(601)
    check_in(back)
    devices_mark_stale()

    [email] = mail.outbox
    assert email.subject == "[Device Owner Portal] 1 offline, 1 back online"
    offline_part, online_part = email.body.split("Back online:")
    assert gone.serial in offline_part and back.serial in online_part


def test_a_long_list_is_cut_with_a_count(clock, owner, product, monkeypatch):
    monkeypatch.setattr(notifications, "MAX_LISTED", 2)
    for _ in range(5):
        seen_now(owner, product)

    sweep_after(clock, 601)

    assert "… and 3 more." in mail.outbox[0].body


# --- once an hour ------------------------------------------------------------------------------


def test_a_flapping_device_is_mailed_at_most_once_an_hour(clock, owner, product):
    device = seen_now(owner, product)
    sweep_after(clock, 601)  # offline: mailed
    assert len(mail.outbox) == 1

    for _ in range(3):  # back, quiet again, back … within the hour: nothing
        clock.shift(60)
        check_in(device)
        devices_mark_stale()
        sweep_after(clock, 601)
    clock.shift(60)
    check_in(device)
    devices_mark_stale()
    assert len(mail.outbox) == 1

    clock.move_to(START + timedelta(seconds=601) + timedelta(hours=1))
    check_in(device)
    devices_mark_stale()  # an hour after the first email: where it stands now (online)

    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject.endswith("is back online")


def test_a_held_back_change_that_reverted_is_never_mailed(clock, owner, product):
    device = seen_now(owner, product)
    sweep_after(clock, 601)
    clock.shift(60)
    check_in(device)
    devices_mark_stale()  # back within the hour: held back
    sweep_after(clock, 601)  # offline again: what the owner last heard is true again

    clock.shift(3600)
    devices_mark_stale()

    assert len(mail.outbox) == 1
    assert not NotificationState.objects.filter(pending=True).exists()


def test_other_devices_of_the_owner_are_not_held_back(clock, owner, product):
    seen_now(owner, product, name="First")
    sweep_after(clock, 601)
    clock.shift(60)
    seen_now(owner, product, name="Second")

    sweep_after(clock, 601)

    assert [m.subject for m in mail.outbox] == [
        "[Device Owner Portal] First is offline",
        "[Device Owner Portal] Second is offline",
    ]


# --- preferences -------------------------------------------------------------------------------


def test_no_email_when_the_owner_turned_them_off(clock, owner, product):
    notification_preference_set(user=owner, offline=False, online=False)
    seen_now(owner, product)

    sweep_after(clock, 601)

    assert mail.outbox == []


def test_a_device_s_own_choice_wins_over_all_devices(clock, owner, product):
    notification_preference_set(user=owner, offline=False, online=False)
    watched = seen_now(owner, product, name="Watched")
    seen_now(owner, product, name="Ignored")
    notification_preference_set(user=owner, device=watched, offline=True, online=True)

    sweep_after(clock, 601)

    [email] = mail.outbox
    assert "Watched" in email.body and "Ignored" not in email.body


def test_back_online_only_still_follows_an_unmailed_offline(clock, owner, product):
    notification_preference_set(user=owner, offline=False, online=True)
    device = seen_now(owner, product)
    sweep_after(clock, 601)
    assert mail.outbox == []

    clock.shift(120)
    check_in(device)
    devices_mark_stale()

    [email] = mail.outbox
    assert email.subject.endswith("is back online")


def test_a_new_owner_hears_nothing_of_the_previous_owner_s_outage(clock, owner, other_owner, product):
    device = seen_now(owner, product)
    sweep_after(clock, 601)
    Device.objects.filter(pk=device.pk).update(owner=other_owner)
    mail.outbox.clear()

    clock.shift(120)
    check_in(device)
    devices_mark_stale()

    assert mail.outbox == []


# --- failures ----------------------------------------------------------------------------------


class FailingOnceBackend(EmailBackend):
    failures = 0

    def send_messages(self, messages):
        if FailingOnceBackend.failures:
            FailingOnceBackend.failures -= 1
            raise smtplib.SMTPServerDisconnected("gone")
        return super().send_messages(messages)


def test_a_failed_send_is_tried_again_on_the_next_sweep(clock, owner, product, settings):
    settings.EMAIL_BACKEND = f"{__name__}.FailingOnceBackend"
    FailingOnceBackend.failures = 1
    seen_now(owner, product, name="Kitchen")

    sweep_after(clock, 601)
    assert mail.outbox == []

    devices_mark_stale()
    [email] = mail.outbox
    assert email.subject.endswith("Kitchen is offline")


def test_a_notifier_failure_does_not_stop_the_sweep(clock, owner, product, monkeypatch):
    device = seen_now(owner, product)

    def broken(**kwargs):
        raise RuntimeError("template missing")

    monkeypatch.setattr(notifications, "notifications_send", broken)

    assert sweep_after(clock, 601) == 1
    device.refresh_from_db()
    assert device.status == DeviceStatus.OFFLINE


# --- pages -------------------------------------------------------------------------------------


def test_the_settings_page_needs_a_login(client):
    response = client.get(SETTINGS_URL)

    assert response.status_code == HTTPStatus.FOUND
    assert reverse("account_login") in response["Location"]


def test_the_device_list_links_to_the_settings_page(owner_client):
    assert SETTINGS_URL in owner_client.get(reverse("devices:list")).content.decode()


def test_the_settings_page_shows_both_emails_on_by_default(owner_client):
    html = owner_client.get(SETTINGS_URL).content.decode()

    assert html.count("checked") == 2


def test_saving_the_choice_for_all_devices(owner_client, owner):
    response = owner_client.post(SETTINGS_URL, {"offline": "on"})

    assert response.status_code == HTTPStatus.FOUND
    preference = NotificationPreference.objects.get(user=owner, device=None)
    assert (preference.offline, preference.online) == (True, False)


def test_the_devices_to_choose_from_are_the_persons_own_list(owner_client, owner, other_owner):
    named = DeviceFactory(owner=owner, serial="ABC-123", name="Greenhouse")
    unnamed = DeviceFactory(owner=owner, serial="ABC-124")
    theirs = DeviceFactory(owner=other_owner, serial="THEIRS-1")

    html = owner_client.get(SETTINGS_URL).content.decode()

    assert f'<option value="{named.pk}">Greenhouse (ABC-123)</option>' in html
    assert f'<option value="{unnamed.pk}">ABC-124</option>' in html  # the serial once
    assert theirs.serial not in html


def test_choosing_a_device_opens_its_page(owner_client, owner):
    device = DeviceFactory(owner=owner, serial="ABC-123")

    response = owner_client.post(SETTINGS_URL, {"action": "find", "device": str(device.pk)})

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("devices:notifications-device", args=[device.pk])


def test_choosing_someone_else_s_device_fails_like_an_unknown_one(owner_client, other_owner):
    theirs = DeviceFactory(owner=other_owner, serial="THEIRS-1")

    for value in (str(theirs.pk), "not-a-device", ""):
        response = owner_client.post(SETTINGS_URL, {"action": "find", "device": value})
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert "Choose one of your devices." in response.content.decode()


def test_a_device_gets_a_choice_of_its_own(owner_client, owner):
    device = DeviceFactory(owner=owner)
    url = reverse("devices:notifications-device", args=[device.pk])

    response = owner_client.post(url, {"follow": "custom", "online": "on"})

    assert response.status_code == HTTPStatus.FOUND
    preference = NotificationPreference.objects.get(user=owner, device=device)
    assert (preference.offline, preference.online) == (False, True)
    assert device.display_name in owner_client.get(SETTINGS_URL).content.decode()


def test_a_device_can_follow_all_devices_again(owner_client, owner):
    device = DeviceFactory(owner=owner)
    notification_preference_set(user=owner, device=device, offline=False, online=False)

    owner_client.post(reverse("devices:notifications-device", args=[device.pk]), {"follow": "all"})

    assert not NotificationPreference.objects.filter(device=device).exists()


def test_another_owner_s_device_page_is_404(owner_client, other_owner):
    device = DeviceFactory(owner=other_owner)

    response = owner_client.get(reverse("devices:notifications-device", args=[device.pk]))

    assert response.status_code == HTTPStatus.NOT_FOUND


# --- unsubscribe -------------------------------------------------------------------------------


def _unsubscribe_path(email):
    return re.search(r"https?://[^/\s]+(/devices/notifications/unsubscribe/\S+/)", email.body).group(1)


def test_the_unsubscribe_link_in_the_email_works_logged_out(clock, client, owner, product):
    device = seen_now(owner, product)
    sweep_after(clock, 601)
    path = _unsubscribe_path(mail.outbox[0])
    mail.outbox.clear()

    confirm = client.get(path)
    assert confirm.status_code == HTTPStatus.OK
    assert "Stop device status emails?" in confirm.content.decode()
    done = client.post(path)
    assert done.status_code == HTTPStatus.OK
    assert "You are unsubscribed" in done.content.decode()

    clock.shift(7200)
    check_in(device)
    devices_mark_stale()
    assert mail.outbox == []


def test_opening_the_link_alone_changes_nothing(client, owner):
    client.get(reverse("devices:notifications-unsubscribe", args=[unsubscribe_token(owner)]))

    assert not NotificationPreference.objects.exists()


def test_one_click_unsubscribe_from_the_mail_client(client, owner):
    device = DeviceFactory(owner=owner)
    notification_preference_set(user=owner, device=device, offline=True, online=True)

    response = client.post(
        reverse("devices:notifications-unsubscribe", args=[unsubscribe_token(owner)]),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == HTTPStatus.OK
    assert list(NotificationPreference.objects.values_list("device", "offline", "online")) == [(None, False, False)]


def test_a_forged_unsubscribe_link_is_refused(client, owner):
    forged = unsubscribe_token(owner)[:-3] + "abc"

    response = client.post(reverse("devices:notifications-unsubscribe", args=[forged]))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not NotificationPreference.objects.exists()


def test_a_link_for_a_deleted_account_is_refused(client):
    user = UserFactory()
    token = unsubscribe_token(user)
    user.delete()

    response = client.get(reverse("devices:notifications-unsubscribe", args=[token]))

    assert response.status_code == HTTPStatus.BAD_REQUEST
