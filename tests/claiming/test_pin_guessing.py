"""Guessing a serial's PIN: small limits per account and per address, so whoever reads the serial
on a box cannot lock the buyer out, and a global bound per serial against a guess spread over many
accounts and addresses (docs/operations.md, "Guessing a PIN"). Ref: #16."""

from pathlib import Path

import pytest
from django.urls import reverse

from claiming import limits, services
from claiming.services import ClaimError
from devices.models import Device
from portal.errors import Throttled
from tests.factories import DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db

BUYER_IP = "192.0.2.1"


def _claim(user, serial, pin, ip):
    return services.device_claim_by_pin(user=user, serial=serial, pin=pin, ip=ip)


def _distributed_wrong_pins(serial, count=None):
    """Wrong PINs from as many accounts and addresses as it takes to reach the serial's bound."""
    count = limits.PIN_FAILURES_PER_SERIAL[0] if count is None else count
    for n in range(count):
        with pytest.raises(ClaimError):
            _claim(UserFactory(), serial, "0000", f"203.0.113.{n}")


# --- a stranger cannot lock the buyer out ---


def test_a_stranger_past_their_own_limit_is_refused_even_the_right_pin():
    device = DeviceFactory(serial="SHOP-1", raw_pin="2468")
    stranger = UserFactory()
    for _ in range(limits.PIN_FAILURES_PER_SERIAL_AND_USER[0]):
        with pytest.raises(ClaimError):
            _claim(stranger, "SHOP-1", "0000", "198.51.100.66")
    with pytest.raises(Throttled):
        _claim(stranger, "SHOP-1", "2468", "198.51.100.66")
    assert Device.objects.get(pk=device.pk).owner is None


def test_a_stranger_who_used_up_their_guesses_does_not_stop_the_buyer():
    DeviceFactory(serial="SHOP-2", raw_pin="2468")
    stranger = UserFactory()
    for _ in range(20):  # all they can, one account at one address
        with pytest.raises((ClaimError, Throttled)):
            _claim(stranger, "SHOP-2", "0000", "198.51.100.66")
    buyer = UserFactory()
    assert _claim(buyer, "SHOP-2", "2468", BUYER_IP).owner == buyer


def test_many_accounts_at_one_address_get_only_that_address_s_guesses():
    DeviceFactory(serial="SHOP-3", raw_pin="2468")
    per_user, _window = limits.PIN_FAILURES_PER_SERIAL_AND_USER
    per_ip, _window = limits.PIN_FAILURES_PER_SERIAL_AND_IP
    judged = 0
    for stranger in UserFactory.create_batch(per_ip // per_user + 1):
        for _ in range(per_user):
            try:
                _claim(stranger, "SHOP-3", "0000", "198.51.100.66")
            except ClaimError:
                judged += 1
            except Throttled:
                pass
    assert judged == per_ip
    buyer = UserFactory()
    assert _claim(buyer, "SHOP-3", "2468", BUYER_IP).owner == buyer


def test_the_buyer_s_own_typos_do_not_use_up_the_stranger_s_share():
    DeviceFactory(serial="SHOP-4", raw_pin="2468")
    buyer = UserFactory()
    for _ in range(limits.PIN_FAILURES_PER_SERIAL_AND_USER[0] - 1):
        with pytest.raises(ClaimError):
            _claim(buyer, "SHOP-4", "2486", BUYER_IP)
    assert _claim(buyer, "SHOP-4", "2468", BUYER_IP).owner == buyer


# --- the global bound stops a distributed guess ---


def test_the_global_bound_stops_a_guess_spread_over_many_accounts_and_addresses():
    device = DeviceFactory(serial="LOCK-1", raw_pin="2468")
    _distributed_wrong_pins("LOCK-1")
    with pytest.raises(Throttled) as caught:
        _claim(UserFactory(), "LOCK-1", "2468", BUYER_IP)
    assert limits.PIN_LOCK_SECONDS - 5 <= caught.value.retry_after <= limits.PIN_LOCK_SECONDS + 1
    assert Device.objects.get(pk=device.pk).owner is None


def test_one_guess_short_of_the_bound_the_right_pin_still_claims():
    DeviceFactory(serial="LOCK-5", raw_pin="2468")
    _distributed_wrong_pins("LOCK-5", count=limits.PIN_FAILURES_PER_SERIAL[0] - 1)
    buyer = UserFactory()
    assert _claim(buyer, "LOCK-5", "2468", BUYER_IP).owner == buyer


def test_an_unknown_serial_locks_the_same_way(owner):
    _distributed_wrong_pins("GHOST")
    with pytest.raises(Throttled):
        _claim(owner, "GHOST", "0000", BUYER_IP)


def test_the_pin_lock_ends_after_a_day(time_machine_at_now):
    DeviceFactory(serial="LOCK-2", raw_pin="2468")
    _distributed_wrong_pins("LOCK-2")
    time_machine_at_now.shift(limits.PIN_LOCK_SECONDS + 5)
    user = UserFactory()
    assert _claim(user, "LOCK-2", "2468", BUYER_IP).owner == user


def test_a_new_pin_lifts_the_lock(owner, other_owner):
    device = DeviceFactory(serial="LOCK-3", owner=other_owner, claimable=False)
    _distributed_wrong_pins("LOCK-3")
    services.device_pin_set(device=device, pin="fresh123", claimable=True, actor=other_owner, ip=BUYER_IP)
    assert _claim(owner, "LOCK-3", "fresh123", BUYER_IP).owner == owner


def test_a_new_pin_gives_the_buyer_back_their_own_guesses(owner, other_owner):
    device = DeviceFactory(serial="LOCK-4", owner=other_owner, claimable=False)
    for _ in range(limits.PIN_FAILURES_PER_SERIAL_AND_USER[0]):
        with pytest.raises(ClaimError):
            _claim(owner, "LOCK-4", "0000", BUYER_IP)
    services.device_pin_set(device=device, pin="fresh123", claimable=True, actor=other_owner, ip=BUYER_IP)
    assert _claim(owner, "LOCK-4", "fresh123", BUYER_IP).owner == owner


def test_the_counts_after_a_new_pin_do_not_start_again_the_next_day(owner, other_owner):
    import datetime as dt

    import time_machine

    device = DeviceFactory(serial="LOCK-5", owner=other_owner, claimable=False)
    with time_machine.travel(dt.datetime(2026, 3, 1, 0, 10, tzinfo=dt.UTC), tick=False) as clock:
        services.device_pin_set(device=device, pin="fresh123", claimable=True, actor=other_owner, ip=BUYER_IP)
        clock.move_to(dt.datetime(2026, 3, 2, 0, 5, tzinfo=dt.UTC))  # the next day's window
        for _ in range(limits.PIN_FAILURES_PER_SERIAL_AND_USER[0]):
            with pytest.raises(ClaimError):
                _claim(owner, "LOCK-5", "0000", BUYER_IP)
        clock.move_to(dt.datetime(2026, 3, 2, 0, 20, tzinfo=dt.UTC))  # a day and ten minutes after the PIN
        with pytest.raises(Throttled):
            _claim(owner, "LOCK-5", "0000", BUYER_IP)


def test_the_documented_bounds_are_the_ones_enforced():
    text = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    section = text.split("## Guessing a PIN", 1)[1].split("\n## ", 1)[0]
    for limit, window in (
        limits.PIN_FAILURES_PER_SERIAL_AND_USER,
        limits.PIN_FAILURES_PER_SERIAL_AND_IP,
        limits.PIN_FAILURES_PER_SERIAL,
    ):
        assert window == limits.DAY
        assert f"| {limit} a day |" in section


def test_the_owner_is_advised_to_choose_a_longer_pin(owner_client, owner):
    device = DeviceFactory(owner=owner)
    html = owner_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    assert "6 or more are far harder to guess" in html
