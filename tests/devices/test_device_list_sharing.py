"""The device list with shared devices (issue 18): marked "shared by <owner>" with the role, a
"Share selected" form for the user's own devices, and a query count that does not grow."""

from http import HTTPStatus

import pytest
from django.test import Client
from django.urls import reverse

from devices.models import Device, Share
from tests.factories import DeviceFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]

LIST = reverse("devices:list")


def client_of(user):
    client = Client()
    client.force_login(user)
    return client


def test_a_shared_device_is_marked_with_its_owner_and_the_role(shared_device, owner, viewer, operator):
    html = client_of(viewer).get(LIST).content.decode()
    assert shared_device.serial in html
    assert f"shared by {owner.email}" in html and ">viewer<" in html
    assert "shared by" in client_of(operator).get(LIST).content.decode()
    assert ">operator<" in client_of(operator).get(LIST).content.decode()


def test_a_shared_device_offers_no_rename_and_no_checkbox(shared_device, viewer):
    html = client_of(viewer).get(LIST).content.decode()
    assert reverse("devices:rename", args=[shared_device.pk]) not in html
    assert f'value="{shared_device.pk}" form="share-selected"' not in html
    assert 'id="share-selected"' not in html  # nothing of theirs to share on this page


def test_the_owner_ticks_their_devices_to_share(shared_device, owner):
    html = client_of(owner).get(LIST).content.decode()
    assert f'value="{shared_device.pk}" form="share-selected"' in html
    assert f'action="{reverse("devices:share-selected")}"' in html
    assert "shared by" not in html


def test_the_counts_include_shared_devices(shared_device, viewer):
    DeviceFactory(owner=viewer)
    html = client_of(viewer).get(LIST).content.decode()
    assert 'All <span class="count">2</span>' in html


def test_devices_under_a_support_grant_stay_off_the_staff_members_own_list(support, grant):
    response = client_of(support).get(LIST)
    assert grant.device.serial.encode() not in response.content


def test_a_revoked_share_leaves_the_list(shared_device, viewer):
    Share.objects.filter(user=viewer).delete()
    assert shared_device.serial.encode() not in client_of(viewer).get(LIST).content


def _fleet(user, sharer, product, own, shared, prefix):
    Device.objects.bulk_create(
        [Device(serial=f"{prefix}-OWN-{i:05d}", product=product, owner=user, factory_key_digest="x")
         for i in range(own)]  # fmt: skip
    )
    theirs = Device.objects.bulk_create(
        [Device(serial=f"{prefix}-SHR-{i:05d}", product=product, owner=sharer, factory_key_digest="x")
         for i in range(shared)]  # fmt: skip
    )
    Share.objects.bulk_create(
        [Share(device=device, user=user, role="viewer" if i % 2 else "operator") for i, device in enumerate(theirs)]
    )


def test_the_list_costs_the_same_queries_for_5_plus_5_and_500_plus_500(django_assert_num_queries):
    product = ProductFactory()
    small, big, sharer = UserFactory(), UserFactory(), UserFactory()
    _fleet(small, sharer, product, 5, 5, "S")
    _fleet(big, sharer, product, 500, 500, "B")
    # The session, the user, one page of devices (with their products and owners, each row's role
    # from EXISTS subqueries), the status counts: four, at any size.
    pages = {}
    for user in (small, big):
        client = client_of(user)
        for query in ("", "?sort=-serial"):  # own devices first, shared ones first
            with django_assert_num_queries(5):  # session, user, the page, its primary fields, counts
                pages[user, query] = client.get(LIST + query)
            assert pages[user, query].status_code == HTTPStatus.OK
    assert b"B-OWN-00000" in pages[big, ""].content and b"shared by" in pages[big, "?sort=-serial"].content
    assert b'All <span class="count">1,000</span>' in pages[big, ""].content
