"""The device page and the device list refresh themselves (portal/live.py, static/js/live.js): each
live endpoint answers the regions that can change, and 304 without rendering while nothing did."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devices import outbox
from devices.command_queue import command_ack, command_send
from devices.models import Command, CommandStatus, Device, DeviceStatus, SupportView
from portal import live
from tests.factories import DeviceFactory

from .protocol_support import checkin, provision_token

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]


def _live(device):
    return reverse("devices:detail-live", args=[device.pk])


def _checkin(device, **values):
    Device.objects.filter(pk=device.pk).update(status=DeviceStatus.ONLINE, last_seen_at=timezone.now(), values=values)


def test_the_device_page_names_its_live_endpoint_and_regions(owner_client, owned_device):
    html = owner_client.get(reverse("devices:detail", args=[owned_device.pk])).content.decode()
    assert f'data-live-url="{_live(owned_device)}"' in html
    for name in ("status", "connection", "values", "charts", "commands"):
        assert f'data-live="{name}"' in html
    assert 'data-live="ownership"' not in html  # changed only by the owner's own actions (a reload)
    assert "js/live.js" in html


def test_the_live_endpoint_answers_the_live_panels_then_304_until_a_check_in(
    owner_client, owned_device, django_assert_num_queries, django_capture_on_commit_callbacks
):
    device_client = Client()
    token = provision_token(device_client, owned_device)
    response = owner_client.get(_live(owned_device))
    assert response.status_code == HTTPStatus.OK
    fragments = response.json()["fragments"]
    assert set(fragments) == {"status", "connection", "values", "charts", "commands"}
    assert {"no-store", "no-cache", "private"} <= set(response["Cache-Control"].replace(" ", "").split(","))
    # The device had no token yet: the next poll's 304 comes from the database, with an ETag under it.
    tag = owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=response["ETag"])["ETag"]
    assert tag != response["ETag"]

    # Nothing marked the device changed since: 304 before the session is read.
    with django_assert_num_queries(0):
        again = owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=tag)
    assert again.status_code == HTTPStatus.NOT_MODIFIED and again.content == b"" and again["ETag"] == tag

    # A check-in through the device protocol marks it changed once it commits.
    with django_capture_on_commit_callbacks(execute=True):
        assert checkin(device_client, token, {"temperature": 23.75}).status_code == HTTPStatus.OK
    changed = owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=tag)
    assert changed.status_code == HTTPStatus.OK and changed["ETag"] != tag
    body = changed.json()["fragments"]
    assert "23.75" in body["values"] and "badge-online" in body["status"]


def test_a_change_marked_but_not_shown_is_a_304_from_the_database(
    owner_client, owned_device, django_assert_max_num_queries
):
    tag = owner_client.get(_live(owned_device))["ETag"]
    live.changed([outbox.live_scope(owned_device.pk)])  # e.g. an event of a kind the page does not show
    # Session, user, the device, its commands' latest change: no rendering; a new ETag for the new token.
    with django_assert_max_num_queries(4):
        same = owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=tag)
    assert same.status_code == HTTPStatus.NOT_MODIFIED and same["ETag"] != tag
    assert owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=same["ETag"]).status_code == 304

    # A change no event records still shows from the database once the token moves (or the minute ends).
    _checkin(owned_device, temperature=30.5)
    live.changed([outbox.live_scope(owned_device.pk)])
    moved = owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=same["ETag"])
    assert moved.status_code == HTTPStatus.OK and "30.5" in moved.json()["fragments"]["values"]


def test_an_etag_not_signed_here_or_for_another_session_gets_the_fragments(owner, owner_client, owned_device):
    tag = owner_client.get(_live(owned_device))["ETag"]
    forged = tag[:-5] + ("0000" if tag[-5:-1] != "0000" else "1111") + '"'
    assert owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=forged).status_code == HTTPStatus.OK
    other_session = Client()
    other_session.force_login(owner)
    assert other_session.get(_live(owned_device), HTTP_IF_NONE_MATCH=tag).status_code == HTTPStatus.OK
    anonymous = Client().get(_live(owned_device), HTTP_IF_NONE_MATCH=tag)
    assert anonymous.status_code == HTTPStatus.FOUND  # to log in


def test_a_command_sent_and_acknowledged_changes_the_page(
    owner_client, owned_device, django_capture_on_commit_callbacks
):
    tag = owner_client.get(_live(owned_device))["ETag"]
    with django_capture_on_commit_callbacks(execute=True):
        command = command_send(device=owned_device, name="reboot")
    sent = owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=tag)
    assert sent.status_code == HTTPStatus.OK and "Pending" in sent.json()["fragments"]["commands"]
    Command.objects.filter(pk=command.pk).update(status=CommandStatus.DELIVERED)
    with django_capture_on_commit_callbacks(execute=True):
        command_ack(device=owned_device, command_id=command.pk, status=CommandStatus.SUCCEEDED, result={"ok": True})
    done = owner_client.get(_live(owned_device), HTTP_IF_NONE_MATCH=sent["ETag"])
    assert done.status_code == HTTPStatus.OK and "Succeeded" in done.json()["fragments"]["commands"]


def test_the_etag_is_the_persons_own(owner_client, shared_device, viewer):
    tag = owner_client.get(_live(shared_device))["ETag"]
    client = Client()
    client.force_login(viewer)
    response = client.get(_live(shared_device), HTTP_IF_NONE_MATCH=tag)
    assert response.status_code == HTTPStatus.OK  # a viewer's page differs from the owner's
    assert "Last IP address" not in response.json()["fragments"]["connection"]


def test_a_poll_by_support_records_no_view(support, grant):
    client = Client()
    client.force_login(support)
    assert client.get(reverse("devices:detail", args=[grant.device.pk])).status_code == HTTPStatus.OK
    views = SupportView.objects.count()
    assert views == 1
    for _ in range(3):
        assert client.get(_live(grant.device)).status_code == HTTPStatus.OK
    assert SupportView.objects.count() == views


def test_a_stranger_polls_nothing_and_writes_nothing(stranger, owned_device):
    client = Client()
    client.force_login(stranger)
    assert client.get(_live(owned_device)).status_code == HTTPStatus.NOT_FOUND
    assert cache.get(f"live:{outbox.live_scope(owned_device.pk)}") is None


def test_the_list_refreshes_its_filters_and_rows(owner, owner_client):
    device = DeviceFactory(owner=owner, last_seen_at=timezone.now() - timedelta(hours=1))
    url = reverse("devices:list-live")
    html = owner_client.get(reverse("devices:list")).content.decode()
    assert f'data-live-url="{url}"' in html and 'data-live="devices"' in html and 'data-live="filters"' in html
    first = owner_client.get(url)
    assert set(first.json()["fragments"]) == {"filters", "devices"}
    assert owner_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == HTTPStatus.NOT_MODIFIED

    _checkin(device)
    changed = owner_client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == HTTPStatus.OK
    rows = changed.json()["fragments"]["devices"]
    assert "badge-online" in rows and "now" in rows
    # The rename forms inside go back to the list page, not to the endpoint.
    assert 'value="/devices/live' not in rows


def test_the_list_endpoint_follows_the_pages_query(owner, owner_client):
    DeviceFactory(owner=owner, status=DeviceStatus.OFFLINE)
    url = reverse("devices:list-live")
    everything = owner_client.get(url)
    online = owner_client.get(url, {"status": "online"}, HTTP_IF_NONE_MATCH=everything["ETag"])
    assert online.status_code == HTTPStatus.OK
    assert "No devices with this status" in online.json()["fragments"]["devices"]


def test_a_revoked_viewers_poll_is_refused_at_once_not_answered_304(
    owner, shared_device, viewer, django_capture_on_commit_callbacks
):
    from devices import sharing
    from devices.models import Share

    client = Client()
    client.force_login(viewer)
    tag = client.get(_live(shared_device))["ETag"]
    tag = client.get(_live(shared_device), HTTP_IF_NONE_MATCH=tag)["ETag"]  # now under the device's token
    assert client.get(_live(shared_device), HTTP_IF_NONE_MATCH=tag).status_code == HTTPStatus.NOT_MODIFIED
    with django_capture_on_commit_callbacks(execute=True):
        sharing.share_revoke(share=Share.objects.get(device=shared_device, user=viewer), actor=owner, ip=None)
    assert client.get(_live(shared_device), HTTP_IF_NONE_MATCH=tag).status_code == HTTPStatus.NOT_FOUND
