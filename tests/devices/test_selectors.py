"""The visibility choke point: an owner sees their own devices and nothing else."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.utils import timezone

from devices import access, selectors
from devices.models import Device, Reading
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_device_list_for_owner_holds_only_their_devices(owner, other_owner):
    mine = DeviceFactory(owner=owner)
    DeviceFactory(owner=other_owner)
    DeviceFactory()
    assert list(selectors.device_list_for_owner(owner)) == [mine]


def test_anonymous_sees_nothing(owner):
    DeviceFactory(owner=owner)
    assert not selectors.device_list_for_owner(AnonymousUser()).exists()


def test_device_for_is_404_for_other_owners(owner, other_owner):
    device = DeviceFactory(owner=other_owner)
    with pytest.raises(Http404):
        access.device_for(owner, device.pk, access.SEE)


def test_device_for_returns_the_device(owner):
    device = DeviceFactory(owner=owner)
    assert access.device_for(owner, device.pk, access.SEE) == device


def test_page_tells_whether_another_follows(owner):
    DeviceFactory.create_batch(5, owner=owner)
    first, more = selectors.device_page_for_owner(owner, per_page=3)
    second, more_after = selectors.device_page_for_owner(owner, page=2, per_page=3)
    assert (len(first), more, len(second), more_after) == (3, True, 2, False)
    assert [d.serial for d in first + second] == sorted(d.serial for d in first + second)


def test_page_filters_by_status(owner):
    online = DeviceFactory(owner=owner, status="online")
    DeviceFactory(owner=owner, status="offline")
    devices, _ = selectors.device_page_for_owner(owner, status="online")
    assert devices == [online]


def test_last_seen_sort_puts_never_seen_devices_last(owner):
    now = timezone.now()
    never = DeviceFactory(owner=owner)
    old = DeviceFactory(owner=owner, last_seen_at=now - timedelta(days=1))
    new = DeviceFactory(owner=owner, last_seen_at=now)
    devices, _ = selectors.device_page_for_owner(owner, sort="-last_seen")
    assert devices == [new, old, never]


def test_status_counts_cover_every_status(owner):
    DeviceFactory.create_batch(2, owner=owner, status="online")
    DeviceFactory(owner=owner)
    assert selectors.device_status_counts_for_owner(owner) == {"online": 2, "offline": 0, "never_seen": 1}


def test_readings_come_oldest_first_and_bounded(owner):
    device = DeviceFactory(owner=owner)
    now = timezone.now()
    Reading.objects.bulk_create(
        [Reading(device=device, recorded_at=now - timedelta(minutes=i), values={"t": i}) for i in range(5)]
    )
    readings = selectors.reading_list_for_device(device, limit=3)
    assert [r.values["t"] for r in readings] == [2, 1, 0]
    assert Device.objects.count() == 1
