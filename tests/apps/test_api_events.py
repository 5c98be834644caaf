"""Integrator API: GET /events, the webhook stream for integrators who poll."""

from datetime import timedelta
from http import HTTPStatus

import pytest
import time_machine
from django.utils import timezone

from apps.models import AppLink
from devices.models import DeviceEvent, DeviceEventType

from ..factories import DeviceFactory
from .api_support import basic_header, link, make_application

pytest_plugins = ["tests.apps.api_fixtures"]

EVENTS_URL = "/api/v1/events"


@pytest.fixture(autouse=True)
def _linked_long_ago(application, linked_device):
    # Most tests record events in the recent past; the link must be older than them to show them.
    AppLink.objects.filter(application=application).update(created_at=timezone.now() - timedelta(days=10))


def record(device, *, at=None, type=DeviceEventType.DATA, data=None):
    return DeviceEvent.objects.create(device=device, type=type, data=data or {}, created_at=at or timezone.now())


def test_lists_events_of_linked_devices_oldest_first(client, app_auth, linked_device):
    now = timezone.now()
    first = record(linked_device, at=now - timedelta(minutes=2), data={"values": {"t": 1}})
    second = record(linked_device, at=now - timedelta(minutes=1), type=DeviceEventType.ONLINE)
    response = client.get(EVENTS_URL, **app_auth)
    assert response.status_code == HTTPStatus.OK
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [str(first.pk), str(second.pk)]
    assert rows[0] == {
        "id": str(first.pk),
        "type": "device.data",
        "device": {
            "id": str(linked_device.pk),
            "serial": linked_device.serial,
            "product": linked_device.product.slug,
            "name": "",
        },
        "created_at": rows[0]["created_at"],
        "data": {"values": {"t": 1}},
    }


def test_leaves_out_the_links_of_other_applications(client, owner, app_auth, application, linked_device):
    dashboard = make_application(owner)
    mine = record(linked_device, type=DeviceEventType.LINKED, data={"application_id": application.app_id})
    record(linked_device, type=DeviceEventType.LINKED, data={"application_id": dashboard.app_id})
    record(linked_device, type=DeviceEventType.UNLINKED, data={"application_id": dashboard.app_id})
    data = record(linked_device)
    rows = client.get(EVENTS_URL, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(mine.pk), str(data.pk)]


def test_leaves_out_devices_not_linked_to_the_caller(client, owner, other_owner, other_application, app_auth):
    record(DeviceFactory(owner=owner))
    other = DeviceFactory(owner=other_owner)
    link(other_application, other)
    record(other)
    assert client.get(EVENTS_URL, **app_auth).json()["results"] == []


def test_leaves_out_what_happened_before_the_link(client, application, app_auth, owner):
    device = DeviceFactory(owner=owner)
    record(device, at=timezone.now() - timedelta(hours=1))
    link(application, device)
    after = record(device)
    rows = client.get(EVENTS_URL, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(after.pk)]


def test_leaves_out_events_after_unlinking(client, application, app_auth, linked_device):
    record(linked_device)
    AppLink.objects.filter(application=application).delete()
    assert client.get(EVENTS_URL, **app_auth).json()["results"] == []


def test_since_bounds_the_window(client, app_auth, linked_device):
    now = timezone.now()
    record(linked_device, at=now - timedelta(days=3))
    recent = record(linked_device, at=now - timedelta(hours=2))
    rows = client.get(EVENTS_URL, {"since": (now - timedelta(days=1)).isoformat()}, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(recent.pk)]


def test_default_window_is_the_last_day(client, app_auth, linked_device):
    record(linked_device, at=timezone.now() - timedelta(days=2))
    recent = record(linked_device, at=timezone.now() - timedelta(hours=23))
    rows = client.get(EVENTS_URL, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(recent.pk)]


def test_following_next_walks_forward_in_time(client, app_auth, linked_device):
    start = timezone.now() - timedelta(minutes=10)
    events = [record(linked_device, at=start + timedelta(seconds=n)) for n in range(5)]
    seen = []
    url, params = EVENTS_URL, {"limit": 2}
    while url:
        body = client.get(url, params, **app_auth).json()
        seen += [row["id"] for row in body["results"]]
        url, params = body["next"], None
    assert seen == [str(event.pk) for event in events]


def test_polling_with_since_picks_up_new_events(client, app_auth, linked_device):
    with time_machine.travel(timezone.now() - timedelta(minutes=5), tick=False):
        record(linked_device)
    last = client.get(EVENTS_URL, **app_auth).json()["results"][-1]
    newer = record(linked_device)
    rows = client.get(EVENTS_URL, {"since": last["created_at"]}, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [last["id"], str(newer.pk)]  # since is inclusive: dedupe by id


@pytest.mark.parametrize("params", [{"since": "last tuesday"}, {"cursor": "garbage"}])
def test_bad_parameters_are_a_400(client, app_auth, params):
    response = client.get(EVENTS_URL, params, **app_auth)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert set(params) <= set(response.json()["error"]["fields"])


def test_needs_credentials(client, application):
    assert client.get(EVENTS_URL).status_code == HTTPStatus.UNAUTHORIZED
    assert client.get(EVENTS_URL, **basic_header(application.app_id, "wrong")).status_code == 401


def test_is_throttled(client, app_auth, settings):
    settings.API_THROTTLE_RATE = "1/minute"
    client.get(EVENTS_URL, **app_auth)
    assert client.get(EVENTS_URL, **app_auth).status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.parametrize("page_size", [10, 100])
def test_query_count_does_not_grow_with_page_size(
    client, owner, application, app_auth, page_size, django_assert_max_num_queries
):
    devices = DeviceFactory.create_batch(5, owner=owner)
    link(application, *devices)
    AppLink.objects.filter(application=application).update(created_at=timezone.now() - timedelta(days=1))
    start = timezone.now() - timedelta(hours=1)
    DeviceEvent.objects.bulk_create(
        [
            DeviceEvent(device=devices[n % 5], type=DeviceEventType.DATA, created_at=start + timedelta(seconds=n))
            for n in range(120)
        ]
    )
    # 1: the application; 2: one page of events joined with their devices, products and links.
    with django_assert_max_num_queries(2):
        response = client.get(EVENTS_URL, {"limit": page_size}, **app_auth)
    assert len(response.json()["results"]) == page_size


def test_an_empty_since_is_a_400_not_the_default_window(client, app_auth):
    response = client.get(EVENTS_URL, {"since": ""}, **app_auth)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"since": ["Give a value, or leave the parameter out."]}


@pytest.mark.parametrize(
    ("url", "position"),
    [
        (EVENTS_URL, "p=not-a-date"),  # events are ordered by time: the position must be one
        (EVENTS_URL, "p=2026-13-45T99:00:00"),
        (EVENTS_URL, "o=-3&p=x"),
        ("/api/v1/devices", "r=1&p=%00"),  # devices by serial: any text but one no query can carry
    ],
)
def test_a_made_up_cursor_is_a_400_not_a_500(client, app_auth, url, position):
    import base64

    cursor = base64.b64encode(position.encode()).decode()
    response = client.get(url, {"cursor": cursor}, **app_auth)
    assert response.status_code == 400, (url, position)
    assert response.json()["error"]["fields"] == {"cursor": ["This cursor is not valid."]}
