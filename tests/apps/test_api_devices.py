"""Integrator API: GET /devices, /devices/<id> and /devices/<id>/readings, scoped to linked devices."""

import uuid
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone

from apps.models import AppLink
from devices.models import Device, DeviceStatus, Reading

from ..factories import DeviceFactory, ProductFactory, ProductFieldFactory
from .api_support import auth, link, make_application

pytest_plugins = ["tests.apps.api_fixtures"]

DEVICES_URL = "/api/v1/devices"


def detail_url(device_id):
    return f"/api/v1/devices/{device_id}"


def readings_url(device_id):
    return f"/api/v1/devices/{device_id}/readings"


def test_list_shows_linked_devices(client, app_auth, linked_device):
    response = client.get(DEVICES_URL, **app_auth)
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["next"] is None
    assert body["results"] == [
        {
            "id": str(linked_device.pk),
            "serial": linked_device.serial,
            "product": linked_device.product.slug,
            "name": "",
            "status": "never_seen",
            "last_seen_at": None,
            "last_ip": None,
        }
    ]


def test_a_list_row_says_what_the_detail_says_of_a_device_that_checked_in(client, app_auth, linked_device):
    Device.objects.filter(pk=linked_device.pk).update(
        status=DeviceStatus.ONLINE, last_seen_at=timezone.now(), last_ip="203.0.113.9", name="Porch"
    )
    [row] = client.get(DEVICES_URL, **app_auth).json()["results"]
    detail = client.get(f"{DEVICES_URL}/{linked_device.pk}", **app_auth).json()
    detail.pop("values")
    detail.pop("fields")  # the product's field definitions: the detail's, like the values
    assert row == detail
    assert (row["status"], row["last_ip"], row["name"]) == ("online", "203.0.113.9", "Porch")
    assert row["last_seen_at"].endswith("Z")


def test_list_leaves_out_every_device_not_linked_to_the_caller(
    client, owner, other_owner, application, other_application, app_auth, linked_device
):
    DeviceFactory(owner=owner)  # the owner's, not linked
    link(other_application, DeviceFactory(owner=other_owner))  # another owner's, another application's
    link(make_application(owner), DeviceFactory(owner=owner))  # the same owner's other application
    released = DeviceFactory(owner=None)
    link(application, released)  # linked once, but nobody owns it now
    DeviceFactory()  # unowned
    serials = [row["serial"] for row in client.get(DEVICES_URL, **app_auth).json()["results"]]
    assert serials == [linked_device.serial]


def test_a_device_linked_to_two_applications_is_seen_by_both(client, owner, application, linked_device):
    second = make_application(owner)
    link(second, linked_device)
    for app in (application, second):
        assert client.get(detail_url(linked_device.pk), **auth(app)).status_code == HTTPStatus.OK


def test_list_is_ordered_by_serial_and_cursor_paginated(client, owner, application, app_auth):
    devices = [DeviceFactory(owner=owner, serial=f"SER{n:03d}") for n in range(5)]
    link(application, *devices)
    first = client.get(DEVICES_URL, {"limit": 2}, **app_auth).json()
    assert [row["serial"] for row in first["results"]] == ["SER000", "SER001"]
    second = client.get(first["next"], **app_auth).json()
    assert [row["serial"] for row in second["results"]] == ["SER002", "SER003"]
    third = client.get(second["next"], **app_auth).json()
    assert [row["serial"] for row in third["results"]] == ["SER004"]
    assert third["next"] is None
    assert client.get(third["previous"], **app_auth).json()["results"] == second["results"]


def test_limit_goes_up_to_100_and_anything_else_is_a_400(client, owner, application, app_auth):
    link(application, *DeviceFactory.create_batch(101, owner=owner))
    assert len(client.get(DEVICES_URL, {"limit": 100}, **app_auth).json()["results"]) == 100
    for limit in ("1000", "101", "0", "-1", "abc", "", "1.5", "٣"):
        response = client.get(DEVICES_URL, {"limit": limit}, **app_auth)
        assert response.status_code == 400, limit
        assert response.json()["error"]["fields"]["limit"] == ["Give a whole number from 1 to 100."]


def test_list_filters_by_status(client, owner, application, app_auth):
    online = DeviceFactory(owner=owner, status=DeviceStatus.ONLINE)
    link(application, online, DeviceFactory(owner=owner, status=DeviceStatus.OFFLINE))
    rows = client.get(DEVICES_URL, {"status": "online"}, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(online.pk)]


def test_list_filters_by_product(client, owner, application, app_auth):
    lamp = DeviceFactory(owner=owner, product=ProductFactory(slug="lamp", name="Lamp"))
    link(application, lamp, DeviceFactory(owner=owner))
    rows = client.get(DEVICES_URL, {"product": "lamp"}, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(lamp.pk)]


def test_list_filters_by_seen_since(client, owner, application, app_auth):
    now = timezone.now()
    recent = DeviceFactory(owner=owner, last_seen_at=now - timedelta(minutes=5))
    link(
        application,
        recent,
        DeviceFactory(owner=owner, last_seen_at=now - timedelta(days=2)),
        DeviceFactory(owner=owner),
    )
    since = (now - timedelta(hours=1)).isoformat()
    rows = client.get(DEVICES_URL, {"seen_since": since}, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(recent.pk)]


def test_list_ignores_parameters_it_does_not_know(client, app_auth, linked_device):
    rows = client.get(DEVICES_URL, {"colour": "blue", "limit": 5}, **app_auth).json()["results"]
    assert [row["id"] for row in rows] == [str(linked_device.pk)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"product": "not a slug"}, "product"),
        ({"seen_since": "yesterday"}, "seen_since"),
        ({"cursor": "garbage"}, "cursor"),
        ({"status": ""}, "status"),
        ({"seen_since": ""}, "seen_since"),
    ],
)
def test_list_rejects_bad_filters_naming_the_field(client, app_auth, params, field):
    response = client.get(DEVICES_URL, params, **app_auth)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("page_size", [10, 100])
def test_list_query_count_does_not_grow_with_page_size(
    client, owner, application, app_auth, page_size, django_assert_max_num_queries
):
    products = [ProductFactory(slug=f"p{n}") for n in range(3)]
    link(application, *[DeviceFactory(owner=owner, product=products[n % 3]) for n in range(110)])
    # 1: the application by App Id; 2: one page of devices joined with their links and products.
    with django_assert_max_num_queries(2):
        response = client.get(DEVICES_URL, {"limit": page_size}, **app_auth)
    assert len(response.json()["results"]) == page_size


@pytest.mark.parametrize("devices", [1, 100])
def test_list_query_count_does_not_grow_with_the_fleet(
    client, owner, application, app_auth, devices, django_assert_num_queries
):
    link(application, *DeviceFactory.create_batch(devices, owner=owner))
    # 1: the application by App Id; 2: one page of devices joined with their links and products.
    with django_assert_num_queries(2):
        response = client.get(DEVICES_URL, {"limit": 100}, **app_auth)
    assert len(response.json()["results"]) == devices


# --- detail ----------------------------------------------------------------------------------------


def test_detail_adds_the_latest_values(client, app_auth, linked_device):
    linked_device.values = {"temperature": 21.5, "door": "open"}
    linked_device.name = "Kitchen"
    linked_device.save()
    body = client.get(detail_url(linked_device.pk), **app_auth).json()
    assert body["values"] == {"temperature": 21.5, "door": "open"}
    assert body["name"] == "Kitchen"
    assert body["id"] == str(linked_device.pk)


@pytest.fixture(params=["unlinked_own", "other_application", "other_owner", "released", "nonexistent"])
def hidden_device_id(request, owner, other_owner, application, other_application):
    """A device id the caller must not be able to tell apart from one that does not exist."""
    if request.param == "unlinked_own":
        return DeviceFactory(owner=owner).pk
    if request.param == "other_application":
        device = DeviceFactory(owner=owner)
        link(make_application(owner), device)
        return device.pk
    if request.param == "other_owner":
        device = DeviceFactory(owner=other_owner)
        link(other_application, device)
        return device.pk
    if request.param == "released":
        device = DeviceFactory(owner=None)
        link(application, device)
        return device.pk
    return uuid.uuid4()


def test_detail_of_a_hidden_device_is_404(client, app_auth, hidden_device_id):
    response = client.get(detail_url(hidden_device_id), **app_auth)
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {
        "error": {"code": "device_not_found", "message": "No device with this id is linked to your application."}
    }


def test_readings_of_a_hidden_device_are_404(client, app_auth, hidden_device_id):
    assert client.get(readings_url(hidden_device_id), **app_auth).status_code == HTTPStatus.NOT_FOUND


def test_unlinking_hides_the_device_at_once(client, application, app_auth, linked_device):
    AppLink.objects.filter(application=application, device=linked_device).delete()
    assert client.get(detail_url(linked_device.pk), **app_auth).status_code == HTTPStatus.NOT_FOUND


def test_detail_needs_credentials(client, linked_device):
    assert client.get(detail_url(linked_device.pk)).status_code == HTTPStatus.UNAUTHORIZED


def test_detail_carries_the_products_field_definitions(client, app_auth, linked_device):
    ProductFieldFactory(product=linked_device.product, key="mode", label="Mode", kind="states",
                        states={"0": "Idle", "1": "Heating"}, order=2)  # fmt: skip
    ProductFieldFactory(product=linked_device.product, key="temperature", label="Temperature", unit="°C",
                        decimals=1, expected_min=5, expected_max=35, primary=True, order=1)  # fmt: skip
    body = client.get(detail_url(linked_device.pk), **app_auth).json()
    assert body["fields"] == [
        {"key": "temperature", "label": "Temperature", "unit": "°C", "kind": "number", "decimals": 1,
         "expected_min": 5.0, "expected_max": 35.0, "states": {}, "primary": True},
        {"key": "mode", "label": "Mode", "unit": "", "kind": "states", "decimals": 1,
         "expected_min": None, "expected_max": None, "states": {"0": "Idle", "1": "Heating"}, "primary": False},
    ]  # fmt: skip


def test_detail_query_count(client, app_auth, linked_device, django_assert_num_queries):
    # 1: the application; 2: the device with its product, through the link; 3: the product's fields.
    with django_assert_num_queries(3):
        client.get(detail_url(linked_device.pk), **app_auth)


# --- readings ------------------------------------------------------------------------------------


def _readings(device, count, *, start=None):
    start = start or timezone.now() - timedelta(hours=count)
    # The application reads what the device recorded since it was linked: link it before these.
    AppLink.objects.filter(device=device).update(created_at=start - timedelta(hours=1))
    Reading.objects.bulk_create(
        [Reading(device=device, recorded_at=start + timedelta(hours=n), values={"n": n}) for n in range(count)]
    )
    return start


def test_readings_recorded_before_the_link_stay_hidden(client, app_auth, linked_device):
    now = timezone.now()
    AppLink.objects.filter(device=linked_device).update(created_at=now - timedelta(minutes=30))
    Reading.objects.bulk_create(
        [
            Reading(device=linked_device, recorded_at=now - timedelta(hours=2), values={"n": "before"}),
            Reading(device=linked_device, recorded_at=now - timedelta(minutes=10), values={"n": "after"}),
        ]
    )
    rows = client.get(readings_url(linked_device.pk), **app_auth).json()["results"]
    assert [row["values"]["n"] for row in rows] == ["after"]


def test_readings_newest_first_and_paginated(client, app_auth, linked_device):
    _readings(linked_device, 5)
    first = client.get(readings_url(linked_device.pk), {"limit": 3}, **app_auth).json()
    assert [row["values"]["n"] for row in first["results"]] == [4, 3, 2]
    second = client.get(first["next"], **app_auth).json()
    assert [row["values"]["n"] for row in second["results"]] == [1, 0]
    assert second["next"] is None


def test_readings_between_since_and_until(client, app_auth, linked_device):
    start = _readings(linked_device, 6)
    params = {"since": (start + timedelta(hours=1)).isoformat(), "until": (start + timedelta(hours=4)).isoformat()}
    rows = client.get(readings_url(linked_device.pk), params, **app_auth).json()["results"]
    assert [row["values"]["n"] for row in rows] == [3, 2, 1]


def test_readings_are_only_the_devices_own(client, owner, application, app_auth, linked_device):
    other = DeviceFactory(owner=owner)
    link(application, other)
    _readings(other, 3)
    assert client.get(readings_url(linked_device.pk), **app_auth).json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "not a time"}, "since"),
        ({"until": "2024-13-40"}, "until"),
        ({"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, "until"),
    ],
)
def test_readings_reject_bad_times(client, app_auth, linked_device, params, field):
    response = client.get(readings_url(linked_device.pk), params, **app_auth)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("page_size", [10, 100])
def test_readings_query_count_does_not_grow_with_page_size(
    client, app_auth, linked_device, page_size, django_assert_max_num_queries
):
    _readings(linked_device, 120)
    # 1: the application; 2: the device through its link; 3: one page of readings.
    with django_assert_max_num_queries(3):
        response = client.get(readings_url(linked_device.pk), {"limit": page_size}, **app_auth)
    assert len(response.json()["results"]) == page_size


def test_readings_need_credentials(client, app_auth, linked_device, application):
    from .api_support import basic_header

    response = client.get(readings_url(linked_device.pk), **basic_header(application.app_id, "wrong"))
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_device_representation_matches_what_drf_fields_would_render(linked_device):
    """DeviceOutput builds its dict by hand for speed; it must say exactly what its declared fields say."""
    from rest_framework import serializers

    from apps.api.serializers import DeviceDetailOutput

    linked_device.last_seen_at = timezone.now()
    linked_device.last_ip = "203.0.113.9"
    linked_device.values = {"temperature": 20.5}
    fields = [ProductFieldFactory(product=linked_device.product, key="temperature", unit="°C")]
    by_fields = serializers.Serializer.to_representation(DeviceDetailOutput(context={"fields": fields}), linked_device)
    assert DeviceDetailOutput(linked_device, context={"fields": fields}).data == by_fields
