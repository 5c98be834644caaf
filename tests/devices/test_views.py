"""The owner's device list: contents, status filter, sort, pages, rename and its query count."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from devices.models import Device
from tests.factories import DeviceFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LIST = "/devices/"


def test_list_shows_name_serial_product_status_last_seen_and_ip(owner_client, owner):
    seen = timezone.now() - timedelta(minutes=5)
    DeviceFactory(owner=owner, name="Boiler", serial="SN-1", status="online", last_seen_at=seen, last_ip="203.0.113.4")
    html = owner_client.get(LIST).content.decode()
    assert "Boiler" in html and "SN-1" in html and "Thermo" in html
    assert 'class="badge badge-online"' in html
    assert "5\xa0minutes ago" in html
    assert f'datetime="{seen:%Y-%m-%dT%H:%M:%S}' in html
    assert f'title="{seen.day} {seen:%b %Y, %H:%M:%S} UTC"' in html  # the exact time on hover
    assert "203.0.113.4" in html


def test_list_shows_only_the_owners_devices(owner_client, owner, other_owner):
    DeviceFactory(owner=owner, serial="MINE-1")
    DeviceFactory(owner=other_owner, serial="THEIRS-1")
    html = owner_client.get(LIST).content.decode()
    assert "MINE-1" in html and "THEIRS-1" not in html


def test_list_filters_by_status(owner_client, owner):
    DeviceFactory(owner=owner, serial="ON-1", status="online")
    DeviceFactory(owner=owner, serial="OFF-1", status="offline")
    html = owner_client.get(LIST + "?status=offline").content.decode()
    assert "OFF-1" in html and "ON-1" not in html


def test_list_sorts_by_name(owner_client, owner):
    DeviceFactory(owner=owner, name="Zeta", serial="A-1")
    DeviceFactory(owner=owner, name="Alpha", serial="B-1")
    html = owner_client.get(LIST + "?sort=name").content.decode()
    assert html.index("Alpha") < html.index("Zeta")


def test_list_ignores_unknown_filter_sort_and_page(owner_client, owner):
    DeviceFactory(owner=owner, serial="X-1")
    response = owner_client.get(LIST + "?status=nope&sort=pk;drop&page=-3")
    assert response.status_code == HTTPStatus.OK
    assert b"X-1" in response.content


def test_a_page_number_past_any_fleet_shows_an_empty_page(owner_client, owner):
    DeviceFactory(owner=owner, serial="X-1")
    response = owner_client.get(LIST + "?page=99999999999999999999")
    assert response.status_code == HTTPStatus.OK
    assert b"X-1" not in response.content


def test_list_is_paginated(owner_client, owner):
    product = ProductFactory()
    Device.objects.bulk_create(
        [Device(serial=f"P-{i:03d}", product=product, owner=owner, factory_key_digest="x") for i in range(60)]
    )
    first = owner_client.get(LIST).content.decode()
    second = owner_client.get(LIST + "?page=2").content.decode()
    assert "P-049" in first and "P-050" not in first and 'rel="next"' in first
    assert "P-050" in second and "P-059" in second and 'rel="next"' not in second


def test_empty_list_invites_to_claim(owner_client):
    html = owner_client.get(LIST).content.decode()
    assert "No devices yet" in html and reverse("claiming:claim") in html


def _devices(owner, n):
    product = ProductFactory()
    now = timezone.now()
    Device.objects.bulk_create(
        [
            Device(
                serial=f"Q-{i:05d}",
                product=product,
                owner=owner,
                factory_key_digest="x",
                status=("online", "offline", "never_seen")[i % 3],
                last_seen_at=now - timedelta(minutes=i),
                last_ip="192.0.2.1",
            )
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("n", [10, 500])
def test_list_query_count_does_not_grow_with_devices(owner_client, owner, n, django_assert_num_queries):
    _devices(owner, n)
    # 1 session, 2 user, 3 one page of devices joined with their product, 4 the primary fields of the
    # page's products, 5 the per-status counts.
    with django_assert_num_queries(5):
        response = owner_client.get(LIST + "?sort=-last_seen")
    assert response.status_code == HTTPStatus.OK


def test_rename_from_the_list_returns_to_it(owner_client, owner):
    device = DeviceFactory(owner=owner)
    response = owner_client.post(
        reverse("devices:rename", args=[device.pk]), {"name": "  Hall   sensor ", "next": LIST + "?page=1"}
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response.url == LIST + "?page=1"
    assert Device.objects.get(pk=device.pk).name == "Hall sensor"


def test_rename_refuses_an_outside_next(owner_client, owner):
    device = DeviceFactory(owner=owner)
    response = owner_client.post(
        reverse("devices:rename", args=[device.pk]), {"name": "x", "next": "https://evil.example/"}
    )
    assert response.url == reverse("devices:detail", args=[device.pk])


def test_rename_to_empty_shows_the_serial(owner_client, owner):
    device = DeviceFactory(owner=owner, name="Old")
    owner_client.post(reverse("devices:rename", args=[device.pk]), {"name": ""})
    device.refresh_from_db()
    assert device.name == "" and device.display_name == device.serial


def test_rename_too_long_is_a_form_error(owner_client, owner):
    device = DeviceFactory(owner=owner)
    response = owner_client.post(reverse("devices:rename", args=[device.pk]), {"name": "x" * 81})
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_a_device_without_a_nickname_shows_its_serial_once(owner_client, owner):
    unnamed = DeviceFactory(owner=owner, serial="SN-ONCE-0001")
    DeviceFactory(owner=owner, serial="SN-NAMED-0002", name="Porch")
    page = owner_client.get(reverse("devices:detail", args=[unnamed.pk])).content.decode()
    head = page[page.index('<div class="page-head">') : page.index('<div class="actions">')]
    assert head.count("SN-ONCE-0001") == 1
    rows = owner_client.get(reverse("devices:list")).content.decode().split("<tr>")
    unnamed_row = next(row for row in rows if "SN-ONCE-0001" in row)
    named_row = next(row for row in rows if "SN-NAMED-0002" in row)
    # Its name is the serial (the link); the rename box's placeholder and label say which device.
    assert unnamed_row.count(">SN-ONCE-0001<") == 1
    assert named_row.count(">SN-NAMED-0002<") == 1 and ">Porch<" in named_row


def test_the_list_shows_each_devices_primary_values_with_their_unit(owner_client, owner):
    from devices.models import ProductField

    device = DeviceFactory(owner=owner, values={"temperature": 21.456, "humidity": 40, "fw": "2.4.1"})
    product = device.product
    ProductField.objects.create(product=product, key="temperature", label="Temperature", unit="°C", kind="number",
                                decimals=1, primary=True)  # fmt: skip
    ProductField.objects.create(product=product, key="humidity", label="Humidity", unit="%", kind="number", decimals=0)
    html = owner_client.get(LIST).content.decode()
    row = html[html.index(device.serial) :]
    row = row[: row.index("</tr>")]
    assert "Temperature" in row and "21.5\u00a0°C" in row
    assert "Humidity" not in row and "2.4.1" not in row  # not primary, not declared
