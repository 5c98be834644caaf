"""While a pre-claim is pending, only its address may claim the device; anyone else is told what
they would be told of a device someone owns. Ref: #9."""

from http import HTTPStatus

import pytest

from claiming import services
from claiming.services import AlreadyClaimed
from devices.models import Device
from tests.factories import ClaimCodeFactory, DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db

IP = "198.51.100.7"
CLAIM = "/claim/"


@pytest.fixture
def reserved(staff):
    """A labelled device (code and PIN) pre-claimed for carol, who has no account yet."""
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code, raw_pin="2468", claimable=True)
    services.device_preclaim(devices=[device], email="Carol@example.com", actor=staff)
    device = Device.objects.get(pk=device.pk)
    device.raw_code = code.raw_code
    return device


def _refusal(attempt):
    with pytest.raises(AlreadyClaimed) as caught:
        attempt()
    return caught.value.code, caught.value.message, caught.value.status


def _owned_refusal(other_owner):
    owned = DeviceFactory(claim_code=ClaimCodeFactory(), owner=other_owner)
    return _refusal(lambda: services.device_claim_by_code(user=UserFactory(), code=owned.claim_code.raw_code, ip=IP))


def test_someone_else_with_the_code_is_refused_as_for_an_owned_device(reserved, owner, other_owner):
    answer = _refusal(lambda: services.device_claim_by_code(user=owner, code=reserved.raw_code, ip=IP))
    assert answer == _owned_refusal(other_owner)
    reserved.refresh_from_db()
    assert (reserved.owner, reserved.preclaim_email) == (None, "carol@example.com")


def test_someone_else_with_serial_and_pin_is_refused_the_same_way(reserved, owner, other_owner):
    answer = _refusal(lambda: services.device_claim_by_pin(user=owner, serial=reserved.serial, pin="2468", ip=IP))
    assert answer == _owned_refusal(other_owner)
    assert Device.objects.get(pk=reserved.pk).owner is None


def test_the_pre_claimed_address_claims_it_with_the_code(reserved):
    carol = UserFactory(email="carol@example.com")
    assert services.device_claim_by_code(user=carol, code=reserved.raw_code, ip=IP) == [reserved]
    assert Device.objects.get(pk=reserved.pk).owner == carol


def test_the_pre_claimed_address_claims_it_with_the_pin(reserved):
    carol = UserFactory(email="CAROL@example.com")
    assert services.device_claim_by_pin(user=carol, serial=reserved.serial, pin="2468", ip=IP).owner == carol


def test_an_unverified_copy_of_the_address_does_not_count(reserved, owner):
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=owner, email="carol@example.com", verified=False)
    with pytest.raises(AlreadyClaimed):
        services.device_claim_by_code(user=owner, code=reserved.raw_code, ip=IP)


def test_a_batch_code_claims_the_rest_and_leaves_the_reserved_one(staff, owner):
    code = ClaimCodeFactory()
    free, kept = DeviceFactory.create_batch(2, claim_code=code)
    services.device_preclaim(devices=[kept], email="carol@example.com", actor=staff)
    assert services.device_claim_by_code(user=owner, code=code.raw_code, ip=IP) == [free]
    assert Device.objects.get(pk=kept.pk).owner is None


def test_the_claim_page_does_not_offer_a_reserved_device(owner_client, staff):
    code = ClaimCodeFactory()
    free, kept = DeviceFactory.create_batch(2, claim_code=code)
    services.device_preclaim(devices=[kept], email="carol@example.com", actor=staff)
    html = owner_client.get(CLAIM + "?code=" + code.raw_code).content.decode()
    assert free.serial in html and kept.serial not in html


def test_the_claim_page_says_already_claimed_for_a_reserved_device(owner_client, reserved):
    response = owner_client.post(CLAIM, {"method": "code", "code": reserved.raw_code})
    assert response.status_code == HTTPStatus.CONFLICT
    assert services.ALREADY_CLAIMED_MESSAGE.encode() in response.content
