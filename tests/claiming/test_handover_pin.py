"""Every change of owner clears the PIN: the next owner never inherits one the previous owner (or
anyone who read it) still knows. Ref: #5."""

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from claiming import services, transfers
from claiming.services import AlreadyClaimed, ClaimError
from devices.models import Device
from portal.errors import ValidationError
from tests.factories import ClaimCodeFactory, DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db

IP = "198.51.100.7"
OLD_PIN = "Old2468"


def _by_code(device, previous, bob, staff):
    services.device_claim_by_code(user=bob, code=device.claim_code.raw_code, ip=IP)


def _by_pin(device, previous, bob, staff):
    services.device_claim_by_pin(user=bob, serial=device.serial, pin=OLD_PIN, ip=IP)


def _preclaim_at_once(device, previous, bob, staff):
    services.device_preclaim(devices=[device], email=bob.email, actor=staff)


def _preclaim_on_verification(device, previous, bob, staff):
    services.device_preclaim(devices=[device], email="later@example.com", actor=staff)
    EmailAddress.objects.create(user=bob, email="later@example.com", verified=True)
    services.device_preclaims_apply(user=bob, email="later@example.com")


def _transfer(device, previous, bob, staff):
    _offer, token = transfers.transfer_offer(device=device, to_email=bob.email, actor=previous, ip=None)
    transfers.transfer_accept(token=token, user=bob, ip=None)


def _reset_then_code(device, previous, bob, staff):
    services.device_release(device=device, actor=previous, ip=IP)
    services.device_claim_by_code(user=bob, code=device.claim_code.raw_code, ip=IP)


HANDOVERS = {
    "code": (_by_code, False),
    "pin": (_by_pin, True),
    "preclaim-at-once": (_preclaim_at_once, False),
    "preclaim-on-verification": (_preclaim_on_verification, False),
    "transfer": (_transfer, True),
    "reset-then-code": (_reset_then_code, True),
}


@pytest.fixture
def bob(db):
    return UserFactory(email="bob@example.com")


@pytest.fixture(params=list(HANDOVERS))
def handed_over(request, owner, bob, staff):
    """A device whose PIN `owner` (or the label) set, after it changed hands to bob by one route."""
    handover, previously_owned = HANDOVERS[request.param]
    device = DeviceFactory(
        claim_code=ClaimCodeFactory(), raw_pin=OLD_PIN, claimable=True, owner=owner if previously_owned else None
    )
    handover(device, owner, bob, staff)
    device = Device.objects.get(pk=device.pk)
    assert device.owner == bob
    return device


def test_a_change_of_owner_clears_the_pin(handed_over):
    assert (handed_over.pin_digest, handed_over.claimable) == ("", False)


def test_the_new_owner_cannot_turn_claiming_on_with_the_old_pin(handed_over, bob):
    with pytest.raises(ValidationError) as caught:
        services.device_pin_set(device=handed_over, pin="", claimable=True, actor=bob, ip=IP)
    assert "pin" in caught.value.fields
    assert Device.objects.get(pk=handed_over.pk).claimable is False


def test_the_old_pin_does_not_claim_after_the_new_owner_turns_claiming_on(handed_over, bob, owner):
    services.device_pin_set(device=handed_over, pin="Bobs9999", claimable=True, actor=bob, ip=IP)
    with pytest.raises(ClaimError):
        services.device_claim_by_pin(user=owner, serial=handed_over.serial, pin=OLD_PIN, ip=IP)
    assert Device.objects.get(pk=handed_over.pk).owner == bob


def test_a_reset_clears_the_pin(owner):
    device = DeviceFactory(owner=owner, raw_pin=OLD_PIN, claimable=True)
    services.device_release(device=device, actor=owner, ip=IP)
    device.refresh_from_db()
    assert (device.pin_digest, device.claimable) == ("", False)
    with pytest.raises(ClaimError):
        services.device_claim_by_pin(user=UserFactory(), serial=device.serial, pin=OLD_PIN, ip=IP)
    assert Device.objects.get(pk=device.pk).owner is None


def test_a_claim_by_code_leaves_no_pin_for_another_to_use(owner, other_owner):
    device = DeviceFactory(claim_code=ClaimCodeFactory(), raw_pin=OLD_PIN, claimable=True)
    services.device_claim_by_code(user=owner, code=device.claim_code.raw_code, ip=IP)
    with pytest.raises((ClaimError, AlreadyClaimed)):
        services.device_claim_by_pin(user=other_owner, serial=device.serial, pin=OLD_PIN, ip=IP)
    assert Device.objects.get(pk=device.pk).owner == owner


def test_the_new_owner_s_pin_form_does_not_offer_to_keep_a_pin(client, handed_over, bob):
    client.force_login(bob)
    html = client.get(reverse("devices:detail", args=[handed_over.pk])).content.decode()
    assert "keep the current PIN" not in html
    response = client.post(reverse("claiming:device-pin", args=[handed_over.pk]), {"pin": "", "claimable": "on"})
    assert b"Set a PIN" in response.content
    assert Device.objects.get(pk=handed_over.pk).claimable is False


def test_an_owner_who_set_a_pin_may_keep_it(owner_client, owner):
    device = DeviceFactory(owner=owner, claimable=False)
    services.device_pin_set(device=device, pin="Mine1234", claimable=False, actor=owner, ip=IP)
    html = owner_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    assert "keep the current PIN" in html


def test_pins_inherited_before_this_rule_are_cleared_and_chosen_ones_kept(owner, other_owner):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("claiming.migrations.0002_clear_inherited_pins")
    since = timezone.now() - timedelta(days=1)
    inherited = DeviceFactory(owner=owner, owned_since=since, raw_pin=OLD_PIN, claimable=True)
    inherited_long_ago = DeviceFactory(owner=owner, raw_pin=OLD_PIN, claimable=False)
    chosen = DeviceFactory(owner=other_owner, owned_since=since, raw_pin=OLD_PIN, claimable=False)
    services.device_pin_set(device=chosen, pin="Chosen42", claimable=True, actor=other_owner, ip=IP)
    on_the_shelf = DeviceFactory(raw_pin=OLD_PIN, claimable=True)

    migration.clear_inherited_pins(apps, None)

    inherited, inherited_long_ago, chosen, on_the_shelf = (
        Device.objects.get(pk=d.pk) for d in (inherited, inherited_long_ago, chosen, on_the_shelf)
    )
    assert (inherited.pin_digest, inherited.claimable) == ("", False)
    assert inherited_long_ago.pin_digest == ""
    assert chosen.pin_digest and chosen.claimable
    assert on_the_shelf.pin_digest and on_the_shelf.claimable
