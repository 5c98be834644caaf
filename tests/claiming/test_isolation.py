"""Every owner URL of a device answers 404 to anyone else, whether the device exists or not."""

import uuid
from http import HTTPStatus

import pytest
from django.urls import reverse

from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

# (url name, method, POST data): every page and action scoped to one device.
OWNER_URLS = [
    ("devices:detail", "get", None),
    ("claiming:device-reset", "get", None),
    ("claiming:device-reset", "post", {}),
    ("claiming:device-transfer", "get", None),
    ("claiming:device-transfer", "post", {"to_email": "someone@example.com"}),
    ("claiming:transfer-cancel", "post", {}),
    ("claiming:device-pin", "post", {"pin": "1234abcd", "claimable": "on"}),
    ("devices:command", "post", {"name": "reboot"}),
    ("apps-device:link", "post", {"application": "app_none"}),
    ("devices:rename", "get", None),
    ("devices:rename", "post", {"name": "Mine now"}),
]


def _request(client, name, method, data, pk):
    url = reverse(name, args=[pk])
    return client.get(url) if method == "get" else client.post(url, data)


@pytest.mark.parametrize(("name", "method", "data"), OWNER_URLS)
def test_another_owners_device_is_404(client, other_owner, owner, name, method, data):
    device = DeviceFactory(owner=owner, name="Alice's", raw_pin="2468")
    client.force_login(other_owner)
    response = _request(client, name, method, data, device.pk)
    assert response.status_code == HTTPStatus.NOT_FOUND
    device.refresh_from_db()
    assert device.owner == owner and device.name == "Alice's"


@pytest.mark.parametrize(("name", "method", "data"), OWNER_URLS)
def test_unowned_device_is_404(owner_client, name, method, data):
    device = DeviceFactory()
    assert _request(owner_client, name, method, data, device.pk).status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize(("name", "method", "data"), OWNER_URLS)
def test_missing_device_is_404(owner_client, name, method, data):
    assert _request(owner_client, name, method, data, uuid.uuid4()).status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize(("name", "method", "data"), OWNER_URLS)
def test_anonymous_visitor_is_sent_to_log_in(client, owner, name, method, data):
    device = DeviceFactory(owner=owner)
    response = _request(client, name, method, data, device.pk)
    assert response.status_code == HTTPStatus.FOUND
    assert response.url.startswith(reverse("account_login"))


@pytest.mark.parametrize(("name", "method", "data"), OWNER_URLS)
def test_the_owner_is_served(owner_client, owner, name, method, data):
    device = DeviceFactory(owner=owner)
    response = _request(owner_client, name, method, data, device.pk)
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
