"""Every change of owner ends the device's shares, invitations and support grants, in the same
transaction as the change (issue 18; DESIGN.md, claim rule 3)."""

import pytest
from django.contrib.auth import get_user_model

from claiming import ownership, services, transfers
from devices import access, sharing
from devices.models import AccessEvent, AccessEventKind, Device, Invitation, InvitationState, Share, SupportGrant
from portal.errors import NotFound
from tests.factories import ClaimCodeFactory, DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]

IP = "198.51.100.7"


@pytest.fixture
def code():
    return ClaimCodeFactory()


@pytest.fixture
def device(owner, viewer, operator, code):
    """The owner's device with a claim code: shared twice, one invitation pending, support granted."""
    device = DeviceFactory(owner=owner, claim_code=code, raw_pin="PIN12345")
    Device.objects.filter(pk=device.pk).update(claimable=True)
    device.refresh_from_db()
    for person, role in ((viewer, "viewer"), (operator, "operator")):
        Share.objects.create(device=device, user=person, role=role, invited_by=owner)
    [(_invitation, token)] = sharing.invitations_send(
        devices=[device], email="ivy@example.com", role="viewer", actor=owner, ip=IP
    )
    device.invitation_token = token
    SupportGrant.objects.create(device=device, granted_by=owner, ends_at=device.created_at.replace(year=2100))
    return device


def assert_nothing_shared(device):
    assert not Share.objects.filter(device=device).exists()
    assert not Invitation.objects.filter(device=device, state=InvitationState.PENDING).exists()
    assert not access.live_grants().filter(device=device).exists()
    assert AccessEvent.objects.filter(device=device, kind=AccessEventKind.ENDED_BY_OWNER_CHANGE).count() == 4


def assert_old_people_lost_it(device, viewer, operator, support):
    for person in (viewer, operator, support):
        assert not access.devices_visible_to(person).filter(pk=device.pk).exists()
    ivy = UserFactory(email="ivy@example.com")
    with pytest.raises(NotFound):
        sharing.invitation_accept(token=device.invitation_token, user=ivy, ip=None)


def test_a_reset_ends_everything(device, owner, viewer, operator, support):
    services.device_release(device=device, actor=owner, ip=IP)
    assert_nothing_shared(device)
    assert_old_people_lost_it(device, viewer, operator, support)
    ends = AccessEvent.objects.filter(kind=AccessEventKind.ENDED_BY_OWNER_CHANGE)
    assert set(ends.values_list("ip", "actor", flat=False)) == {(IP, owner.pk)}


def test_a_pin_handover_ends_everything(device, other_owner, viewer, operator, support):
    services.device_claim_by_pin(user=other_owner, serial=device.serial, pin="PIN12345", ip=IP)
    assert Device.objects.get(pk=device.pk).owner == other_owner
    assert_nothing_shared(device)
    assert_old_people_lost_it(device, viewer, operator, support)


def test_an_accepted_transfer_ends_everything(device, owner, other_owner, viewer, operator, support):
    _transfer, token = transfers.transfer_offer(device=device, to_email=other_owner.email, actor=owner, ip=IP)
    transfers.transfer_accept(token=token, user=other_owner, ip=IP)
    assert Device.objects.get(pk=device.pk).owner == other_owner
    assert_nothing_shared(device)
    assert_old_people_lost_it(device, viewer, operator, support)


def test_an_owners_deleted_account_ends_everything(device, owner, viewer, operator, support):
    get_user_model().objects.filter(pk=owner.pk).delete()
    assert Device.objects.get(pk=device.pk).owner is None
    assert_nothing_shared(device)
    assert_old_people_lost_it(device, viewer, operator, support)


def test_a_claim_by_code_after_a_reset_starts_with_nothing_shared(device, owner, other_owner, code):
    services.device_release(device=device, actor=owner, ip=IP)
    services.device_claim_by_code(user=other_owner, code=code.raw_code, ip=IP)
    assert Device.objects.get(pk=device.pk).owner == other_owner
    assert_nothing_shared(device)


def test_a_preclaim_after_a_reset_starts_with_nothing_shared(device, owner, staff):
    services.device_release(device=device, actor=owner, ip=IP)
    new_owner = UserFactory(email="new@example.com")
    assert services.device_preclaim(devices=[device], email=new_owner.email, actor=staff)["claimed"] == 1
    assert_nothing_shared(device)


def test_a_preclaim_of_an_owned_device_is_skipped_and_keeps_its_shares(device, staff):
    assert services.device_preclaim(devices=[device], email="new@example.com", actor=staff)["skipped"] == 1
    assert Share.objects.filter(device=device).count() == 2


def test_the_next_owner_is_not_shown_whom_it_was_shared_with(device, other_owner):
    from devices.selectors import access_event_list_for_device

    services.device_claim_by_pin(user=other_owner, serial=device.serial, pin="PIN12345", ip=IP)
    device.refresh_from_db()
    assert access_event_list_for_device(device, viewer=other_owner) == []


def test_the_end_is_in_the_transaction_of_the_change(device, owner, monkeypatch):
    """A change of owner that fails after the shares ended leaves them as they were, and the other way
    round: the two are one transaction."""

    def fail(**kwargs):
        raise RuntimeError("the change fails after sharing ended")

    monkeypatch.setattr(ownership, "device_owner_forget", fail)
    with pytest.raises(RuntimeError):
        services.device_release(device=device, actor=owner, ip=IP)
    assert Device.objects.get(pk=device.pk).owner == owner
    assert Share.objects.filter(device=device).count() == 2
    assert Invitation.objects.filter(device=device, state=InvitationState.PENDING).exists()
    assert access.live_grants().filter(device=device).exists()


def test_a_failure_to_end_sharing_undoes_the_change(device, owner, other_owner, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("ending the shares fails")

    monkeypatch.setattr(ownership, "sharing_end_for_device", fail)
    with pytest.raises(RuntimeError):
        services.device_claim_by_pin(user=other_owner, serial=device.serial, pin="PIN12345", ip=IP)
    assert Device.objects.get(pk=device.pk).owner == owner
