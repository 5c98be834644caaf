"""The device list's rows (`apps.api.selectors.LinkedDeviceRows`): on PostgreSQL one written
statement, elsewhere the ORM. Both are read here on the same devices and compared, and the pages the
API answers are compared byte for byte with what DRF's own machinery answers for the same devices:
its cursor pagination over the ORM's Device instances, each rendered field by declared field."""

from datetime import UTC, datetime, timedelta, timezone
from http import HTTPStatus

import pytest
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.api import selectors
from apps.api.pagination import DeviceCursorPagination
from apps.api.serializers import DeviceOutput
from devices.models import DeviceStatus

from ..factories import DeviceFactory, ProductFactory
from .api_support import auth, link, make_application

pytest_plugins = ["tests.apps.api_fixtures"]

DEVICES_URL = "/api/v1/devices"
SEEN = datetime(2026, 3, 2, 9, 0, 0, 250_000, tzinfo=UTC)  # fractional seconds on purpose


@pytest.fixture
def fleet(owner, other_owner, application, other_application):
    """Linked devices with every kind of value a row shows, among devices the application must not see."""
    lamp, plug = ProductFactory(slug="lamp", name="Lamp"), ProductFactory(slug="plug", name="Plug")
    visible = [
        DeviceFactory(owner=owner, product=lamp, serial="A-01", name="Porch", status=DeviceStatus.ONLINE,
                      last_seen_at=SEEN, last_ip="203.0.113.9"),
        # Whole seconds, given in another time zone: stored, and shown, as the same instant.
        DeviceFactory(owner=owner, product=plug, serial="A-03", name='Küche "☕" \\ </script>',
                      status=DeviceStatus.OFFLINE, last_seen_at=datetime(2026, 3, 1, 23, 30, tzinfo=timezone(
                          timedelta(hours=5, minutes=30))), last_ip="2001:db8::1"),
        DeviceFactory(owner=owner, product=lamp, serial="A-05", name="", status=DeviceStatus.NEVER_SEEN,
                      last_seen_at=None, last_ip=None),
        DeviceFactory(owner=owner, product=plug, serial="A-07", name="Garage", status=DeviceStatus.ONLINE,
                      last_seen_at=SEEN - timedelta(days=3), last_ip="198.51.100.7"),
        DeviceFactory(owner=owner, product=lamp, serial="a-09", name="Shed", status=DeviceStatus.OFFLINE,
                      last_seen_at=SEEN + timedelta(microseconds=1), last_ip="192.0.2.1"),
    ]
    link(application, *visible)
    link(application, DeviceFactory(owner=None, product=lamp, serial="A-02"))  # linked once, released since
    DeviceFactory(owner=owner, product=lamp, serial="A-04")  # the owner's, not linked
    link(make_application(owner), DeviceFactory(owner=owner, product=lamp, serial="A-06"))  # another application's
    link(other_application, DeviceFactory(owner=other_owner, product=plug, serial="A-08"))  # another owner's
    return visible


def drf_page(application, url, **filters):
    """What DRF answers for `url` by itself: its cursor pagination over the ORM's devices, each row
    rendered by DeviceOutput's declared fields (DRF's per-field machinery, not our to_representation)."""
    request = Request(APIRequestFactory().get(url))
    paginator = DeviceCursorPagination()
    devices = selectors.device_filter(selectors.device_list_for_application(application), **filters)
    page = paginator.paginate_queryset(devices.select_related("product"), request)
    rows = [serializers.Serializer.to_representation(DeviceOutput(), device) for device in page]
    return JSONRenderer().render(paginator.get_paginated_response(rows).data)


def walk(client, application, url, **filters):
    """Follows `next` from `url` to the end and `previous` back, checking each page against DRF's;
    returns the serials read going forward."""
    serials, last = [], None
    while url:
        response = client.get(url, **auth(application))
        assert response.status_code == HTTPStatus.OK
        assert response.content == drf_page(application, url, **filters)
        last = response.json()
        serials += [row["serial"] for row in last["results"]]
        url = last["next"]
    url = last["previous"]
    while url:
        response = client.get(url, **auth(application))
        assert response.content == drf_page(application, url, **filters)
        url = response.json()["previous"]
    return serials


@pytest.mark.parametrize("time_zone", ["UTC", "Asia/Kolkata"])
def test_every_page_is_byte_for_byte_what_drf_answers(client, application, fleet, settings, time_zone):
    settings.TIME_ZONE = time_zone
    serials = walk(client, application, f"http://testserver{DEVICES_URL}?limit=2")
    assert serials == [device.serial for device in fleet]


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ("status=online", {"status": "online"}),
        ("product=plug", {"product": "plug"}),
        ("seen_since=2026-03-02T09:00:00.25%2B00:00", {"seen_since": SEEN}),
        ("status=offline&product=lamp", {"status": "offline", "product": "lamp"}),
        ("status=never_seen&product=plug", {"status": "never_seen", "product": "plug"}),
    ],
)
def test_filtered_pages_are_what_drf_answers(client, application, fleet, query, filters):
    serials = walk(client, application, f"http://testserver{DEVICES_URL}?{query}&limit=1", **filters)
    assert serials == [device.serial for device in fleet if _shown(device, **filters)]


def _shown(device, status=None, product=None, seen_since=None):
    return ((status is None or device.status == status) and (product is None or device.product.slug == product)
            and (seen_since is None or device.last_seen_at is not None and device.last_seen_at >= seen_since))


# --- the statement and the ORM read the same rows -------------------------------------------------


@pytest.fixture
def rows(requires_postgres, application, fleet):
    return selectors.LinkedDeviceRows(application)


@pytest.mark.parametrize(
    "filters",
    [{}, {"status": "online"}, {"status": "never_seen"}, {"product": "lamp"}, {"product": "none"},
     {"seen_since": SEEN}, {"seen_since": SEEN - timedelta(days=1), "product": "lamp"}, {"status": ""}],
)  # fmt: skip
@pytest.mark.parametrize("ordering", ["serial", "-serial"])
@pytest.mark.parametrize("past", [None, ("gt", "A-03"), ("lt", "A-07"), ("gt", ""), ("lt", "A-01")])
def test_the_statement_reads_what_the_orm_reads(rows, filters, ordering, past):
    chosen = selectors.LinkedDeviceRows(rows.application, **filters).order_by(ordering)
    if past:
        chosen = chosen.filter(**{f"serial__{past[0]}": past[1]})
    for page in (slice(0, 101), slice(0, 2), slice(1, 3), slice(4, 10)):  # as the pagination slices
        assert chosen.read_by_statement(page) == chosen.read_by_orm(page), page


def test_the_statement_reads_every_visible_device_and_no_other(rows, fleet):
    read = rows.order_by("serial").read_by_statement(slice(0, 101))
    assert [row["serial"] for row in read] == [device.serial for device in fleet]
    assert read[0] == {
        "id": fleet[0].pk, "serial": "A-01", "name": "Porch", "status": "online", "last_seen_at": SEEN,
        "last_ip": "203.0.113.9", "product_slug": "lamp",
    }  # fmt: skip


def test_the_rows_refuse_an_order_the_list_does_not_have(application):
    with pytest.raises(NotImplementedError):
        selectors.LinkedDeviceRows(application).order_by("last_seen_at")
