"""A serial is matched as the label would be read: case and surrounding spaces do not matter.
Ref: #26."""

import pytest

from claiming import limits, services
from claiming.services import ClaimError
from devices.models import Device
from portal.errors import Throttled
from tests.factories import DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db

IP = "192.0.2.1"


def _claim(user, serial, pin, ip=IP):
    return services.device_claim_by_pin(user=user, serial=serial, pin=pin, ip=ip)


@pytest.mark.parametrize("typed", ["demo-0004", "  Demo-0004 ", "DEMO-0004\t"])
def test_a_serial_typed_in_another_case_claims(owner, typed):
    device = DeviceFactory(serial="DEMO-0004", raw_pin="2468")
    assert _claim(owner, typed, "2468") == device
    assert Device.objects.get(pk=device.pk).owner == owner


def test_the_right_pin_with_a_lower_case_serial_is_not_counted_as_a_wrong_guess():
    DeviceFactory(serial="DEMO-0004", raw_pin="2468")
    buyer = UserFactory()
    for _ in range(limits.PIN_FAILURES_PER_SERIAL_AND_USER[0] - 1):
        with pytest.raises(ClaimError):
            _claim(buyer, "DEMO-0004", "2486")
    assert _claim(buyer, "demo-0004", "2468").owner == buyer


def test_changing_the_case_does_not_buy_more_guesses():
    DeviceFactory(serial="SHOP-1", raw_pin="2468")
    stranger = UserFactory()
    for _ in range(limits.PIN_FAILURES_PER_SERIAL_AND_USER[0]):
        with pytest.raises(ClaimError):
            _claim(stranger, "shop-1", "0000")
    with pytest.raises(Throttled):
        _claim(stranger, "Shop-1", "1111")


def test_a_serial_that_differs_only_in_case_from_another_claims_its_own_device(owner):
    upper = DeviceFactory(serial="AB-1", raw_pin="2468")
    DeviceFactory(serial="ab-1", raw_pin="1357")
    assert _claim(owner, "AB-1", "2468") == upper


def test_the_claim_page_accepts_a_lower_case_serial(owner_client, owner):
    device = DeviceFactory(serial="DEMO-0004", raw_pin="2468")
    owner_client.post("/claim/", {"method": "pin", "serial": "demo-0004", "pin": "2468"})
    assert Device.objects.get(pk=device.pk).owner == owner
