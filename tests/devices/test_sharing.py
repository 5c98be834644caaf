"""Sharing services (devices.sharing): invitations, shares, support grants and their audit (issue 18)."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from devices import sharing
from devices.models import (
    AccessEvent,
    AccessEventKind,
    Invitation,
    InvitationState,
    NotificationPreference,
    Share,
    SupportGrant,
    SupportView,
)
from devices.tasks import expire_support_grants
from portal.errors import ApplicationError, Conflict, NotFound, Throttled, ValidationError
from tests.factories import DeviceFactory, ShareFactory, SupportGrantFactory, UserFactory

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]

INVITEE = "ivy@example.com"


def invite(owner, *devices, email=INVITEE, role="viewer"):
    return sharing.invitations_send(devices=devices, email=email, role=role, actor=owner, ip="192.0.2.1")


def token_in(message):
    return re.search(r"/shares/(\S+)", message.body).group(1)


@pytest.fixture
def device(owner):
    return DeviceFactory(owner=owner, name="Mum's <b>secret</b> heater")


@pytest.fixture
def invitee(db):
    return UserFactory(email=INVITEE, username="ivy")


# --- invite ------------------------------------------------------------------------------------


def test_an_invitation_stores_only_the_token_digest_valid_7_days(owner, device):
    [(invitation, token)] = invite(owner, device)
    invitation.refresh_from_db()
    assert invitation.token_digest == sharing.invitation_token_digest(token)
    assert token not in invitation.token_digest
    assert invitation.state == InvitationState.PENDING
    assert invitation.email == INVITEE and invitation.role == "viewer" and invitation.invited_by == owner
    assert timedelta(days=7) - timedelta(seconds=5) < invitation.expires_at - timezone.now() <= timedelta(days=7)


def test_the_email_names_inviter_product_serial_and_link_and_no_text_of_the_sender(
    owner, device, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        [(_invitation, token)] = invite(owner, device)
    [message] = mail.outbox
    assert message.to == [INVITEE]
    text = message.subject + message.body
    assert owner.email in text and device.product.name in message.body and device.serial in message.body
    assert f"{settings.PORTAL_BASE_URL}/shares/{token}" in message.body
    assert "secret" not in text and "Mum" not in text  # the owner's nickname is text of theirs
    assert settings.PORTAL_NAME in message.subject


def test_several_devices_are_one_email_with_a_link_each(owner, django_capture_on_commit_callbacks):
    devices = [DeviceFactory(owner=owner) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        made = invite(owner, *devices, role="operator")
    [message] = mail.outbox
    assert len(made) == 3 and {invitation.role for invitation, _ in made} == {"operator"}
    for (_invitation, token), device in zip(made, devices, strict=True):
        assert device.serial in message.body and f"/shares/{token}" in message.body
    assert "3 devices" in message.subject


def test_each_invitation_is_audited(owner, device):
    invite(owner, device, role="operator")
    event = AccessEvent.objects.get(device=device)
    assert (event.kind, event.actor, event.ip, event.subject_email, event.role) == (
        AccessEventKind.INVITED, owner, "192.0.2.1", INVITEE, "operator",
    )  # fmt: skip


def test_only_the_owner_invites(owner, device, other_owner):
    with pytest.raises(NotFound):
        invite(other_owner, device)
    assert not Invitation.objects.exists()


def test_a_viewer_cannot_invite_either(shared_device, viewer):
    with pytest.raises(NotFound):
        invite(viewer, shared_device)


def test_you_cannot_invite_yourself(owner, device):
    with pytest.raises(ValidationError) as caught:
        invite(owner, device, email=owner.email.upper())
    assert "your own address" in caught.value.message


@pytest.mark.parametrize("email", ["", "not-an-address", "a" * 250 + "@example.com"])
def test_a_bad_address_is_refused(owner, device, email):
    with pytest.raises(ValidationError):
        invite(owner, device, email=email)


def test_a_role_is_viewer_or_operator(owner, device):
    with pytest.raises(ValidationError) as caught:
        invite(owner, device, role="owner")
    assert "role" in caught.value.fields


def test_someone_who_already_has_access_is_a_clear_error(owner, shared_device, viewer):
    with pytest.raises(Conflict) as caught:
        invite(owner, shared_device, email=viewer.email)
    assert viewer.email in caught.value.message and shared_device.serial in caught.value.message


def test_a_pending_invitation_is_a_clear_error(owner, device):
    invite(owner, device)
    with pytest.raises(Conflict) as caught:
        invite(owner, device, email=INVITEE.upper())
    assert "pending invitation" in caught.value.message and device.serial in caught.value.message


def test_an_expired_invitation_can_be_sent_again(owner, device):
    [(old, _)] = invite(owner, device)
    Invitation.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    [(new, _)] = invite(owner, device)
    old.refresh_from_db()
    assert old.state == InvitationState.ENDED and new.state == InvitationState.PENDING


def test_invitations_per_sender_are_limited(owner):
    for n in range(sharing.INVITATIONS_PER_USER[0][0]):
        invite(owner, DeviceFactory(owner=owner), email=f"friend{n}@example.com")
    with pytest.raises(Throttled) as caught:
        invite(owner, DeviceFactory(owner=owner), email="one-more@example.com")
    assert caught.value.retry_after > 0
    assert Invitation.objects.count() == sharing.INVITATIONS_PER_USER[0][0]


def test_invitations_to_one_address_are_limited_across_senders(django_capture_on_commit_callbacks):
    limit = sharing.INVITATIONS_PER_RECIPIENT[0]
    for _ in range(limit):
        sender = UserFactory()
        invite(sender, DeviceFactory(owner=sender))
    sender = UserFactory()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Throttled):
        invite(sender, DeviceFactory(owner=sender))
    assert mail.outbox == []


def test_an_invitation_of_several_devices_counts_once(owner):
    devices = [DeviceFactory(owner=owner) for _ in range(sharing.INVITATIONS_PER_USER[0][0] + 1)]
    assert len(invite(owner, *devices)) == len(devices)


# --- the link ----------------------------------------------------------------------------------


def test_the_link_finds_its_invitation_by_digest(owner, device):
    [(invitation, token)] = invite(owner, device)
    assert sharing.invitation_get_by_token(token=token) == invitation
    with pytest.raises(NotFound):
        sharing.invitation_get_by_token(token=token + "x")
    with pytest.raises(NotFound):
        sharing.invitation_get_by_token(token=invitation.token_digest)  # the digest is not a token


def test_an_expired_link_stops_working(owner, device, invitee):
    [(invitation, token)] = invite(owner, device)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ValidationError) as caught:
        sharing.invitation_accept(token=token, user=invitee, ip=None)
    assert "expired" in caught.value.message
    assert not Share.objects.exists()


# --- accept, decline ---------------------------------------------------------------------------


def test_accepting_shares_the_device_in_the_invited_role(owner, device, invitee):
    [(invitation, token)] = invite(owner, device, role="operator")
    share = sharing.invitation_accept(token=token, user=invitee, ip="198.51.100.7")
    assert (share.device, share.user, share.role, share.invited_by) == (device, invitee, "operator", owner)
    invitation.refresh_from_db()
    assert invitation.state == InvitationState.ACCEPTED and invitation.decided_at is not None
    event = AccessEvent.objects.filter(kind=AccessEventKind.ACCEPTED).get()
    assert (event.actor, event.ip, event.subject_email) == (invitee, "198.51.100.7", INVITEE)


def test_a_link_is_used_once(owner, device, invitee):
    [(_invitation, token)] = invite(owner, device)
    sharing.invitation_accept(token=token, user=invitee, ip=None)
    with pytest.raises(Conflict):
        sharing.invitation_accept(token=token, user=invitee, ip=None)
    assert Share.objects.count() == 1


def test_only_the_invited_address_may_accept(owner, device, other_owner):
    [(_invitation, token)] = invite(owner, device)
    with pytest.raises(ApplicationError) as caught:
        sharing.invitation_accept(token=token, user=other_owner, ip=None)
    assert caught.value.status == 403 and INVITEE in caught.value.message
    assert not Share.objects.exists()


def test_the_invited_address_must_be_verified(owner, device):
    unverified = UserFactory(email=INVITEE, verified=False)
    [(_invitation, token)] = invite(owner, device)
    with pytest.raises(sharing.EmailNotVerified):
        sharing.invitation_accept(token=token, user=unverified, ip=None)


def test_the_owner_cannot_accept_an_invitation_to_their_own_device(owner, device):
    from allauth.account.models import EmailAddress

    [(_invitation, token)] = invite(owner, device)
    EmailAddress.objects.create(user=owner, email=INVITEE, verified=True)
    with pytest.raises(Conflict):
        sharing.invitation_accept(token=token, user=owner, ip=None)


def test_declining_closes_the_link(owner, device, invitee):
    [(invitation, token)] = invite(owner, device)
    sharing.invitation_decline(token=token, user=invitee, ip=None)
    invitation.refresh_from_db()
    assert invitation.state == InvitationState.DECLINED
    with pytest.raises(Conflict):
        sharing.invitation_accept(token=token, user=invitee, ip=None)
    assert AccessEvent.objects.filter(kind=AccessEventKind.DECLINED, subject_email=INVITEE).exists()


# --- the owner manages -------------------------------------------------------------------------


def test_the_owner_cancels_an_invitation(owner, device, invitee):
    [(invitation, token)] = invite(owner, device)
    sharing.invitation_cancel(invitation=invitation, actor=owner, ip=None)
    with pytest.raises(NotFound):
        sharing.invitation_accept(token=token, user=invitee, ip=None)
    assert AccessEvent.objects.filter(kind=AccessEventKind.CANCELLED).exists()


def test_only_the_owner_cancels(owner, device, other_owner):
    [(invitation, _)] = invite(owner, device)
    with pytest.raises(NotFound):
        sharing.invitation_cancel(invitation=invitation, actor=other_owner, ip=None)
    invitation.refresh_from_db()
    assert invitation.state == InvitationState.PENDING


def test_the_owner_changes_a_role(owner, shared_device, viewer):
    share = Share.objects.get(user=viewer)
    sharing.share_role_change(share=share, role="operator", actor=owner, ip=None)
    assert Share.objects.get(user=viewer).role == "operator"
    event = AccessEvent.objects.get(kind=AccessEventKind.ROLE_CHANGED)
    assert event.subject_email == viewer.email and event.detail == "Viewer → Operator"


def test_nobody_else_changes_a_role(shared_device, viewer, operator):
    share = Share.objects.get(user=viewer)
    with pytest.raises(NotFound):
        sharing.share_role_change(share=share, role="operator", actor=operator, ip=None)
    with pytest.raises(NotFound):
        sharing.share_role_change(share=Share.objects.get(user=operator), role="operator", actor=viewer, ip=None)
    assert Share.objects.get(user=viewer).role == "viewer"


def test_the_owner_revokes_and_the_persons_email_choice_goes_too(owner, shared_device, viewer):
    NotificationPreference.objects.create(user=viewer, device=shared_device, offline=True, online=True)
    sharing.share_revoke(share=Share.objects.get(user=viewer), actor=owner, ip=None)
    assert not Share.objects.filter(user=viewer).exists()
    assert not NotificationPreference.objects.filter(user=viewer).exists()
    assert AccessEvent.objects.filter(kind=AccessEventKind.REVOKED, subject_email=viewer.email).exists()


def test_a_person_leaves_a_shared_device(shared_device, viewer):
    sharing.share_leave(share=Share.objects.get(user=viewer), user=viewer, ip=None)
    assert not Share.objects.filter(user=viewer).exists()
    assert AccessEvent.objects.get(kind=AccessEventKind.LEFT).actor == viewer


def test_nobody_leaves_for_someone_else(shared_device, viewer, operator):
    with pytest.raises(NotFound):
        sharing.share_leave(share=Share.objects.get(user=viewer), user=operator, ip=None)


# --- support grants ----------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [timedelta(minutes=59), timedelta(days=30, seconds=1), 3600])
def test_a_grant_lasts_1_hour_to_30_days(owner, device, duration):
    with pytest.raises(ValidationError) as caught:
        grant_for(owner, device, duration)
    assert "duration" in caught.value.fields


@pytest.mark.parametrize("duration", [timedelta(hours=1), timedelta(days=30)])
def test_the_bounds_themselves_are_allowed(owner, device, duration):
    grant = grant_for(owner, device, duration, allow_commands=True)
    assert grant.allow_commands and grant.ended_at is None
    assert AccessEvent.objects.get(kind=AccessEventKind.GRANT_STARTED).detail.endswith("commands allowed")


def grant_for(owner, device, duration, allow_commands=False):
    return sharing.support_grant_start(
        device=device, duration=duration, allow_commands=allow_commands, actor=owner, ip=None
    )


def test_a_new_grant_replaces_the_live_one(owner, device):
    first = grant_for(owner, device, timedelta(days=1), allow_commands=True)
    second = grant_for(owner, device, timedelta(hours=2))
    first.refresh_from_db()
    assert first.ended_reason == SupportGrant.EndedReason.REPLACED and first.ended_at is not None
    assert list(SupportGrant.objects.filter(ended_at__isnull=True)) == [second]


def test_only_the_owner_grants_support(shared_device, operator):
    with pytest.raises(NotFound):
        grant_for(operator, shared_device, timedelta(hours=1), allow_commands=True)
    assert not SupportGrant.objects.exists()


def test_the_owner_ends_a_grant_early(owner, grant):
    sharing.support_grant_end(grant=grant, actor=owner, ip=None)
    grant.refresh_from_db()
    assert grant.ended_reason == SupportGrant.EndedReason.OWNER
    with pytest.raises(Conflict):
        sharing.support_grant_end(grant=grant, actor=owner, ip=None)


def test_expiry_ends_grants_past_their_time_with_an_audit_entry(owner):
    past = SupportGrantFactory(device=DeviceFactory(owner=owner), ends_at=timezone.now() - timedelta(seconds=1))
    live = SupportGrantFactory(device=DeviceFactory(owner=owner))
    assert sharing.support_grants_expire() == 1
    past.refresh_from_db()
    live.refresh_from_db()
    assert past.ended_reason == SupportGrant.EndedReason.EXPIRED and live.ended_at is None
    assert AccessEvent.objects.get(kind=AccessEventKind.GRANTS_EXPIRED).device_id == past.device_id
    assert sharing.support_grants_expire() == 0  # each grant ends once


def test_the_beat_task_expires_grants_and_is_scheduled(owner):
    SupportGrantFactory(device=DeviceFactory(owner=owner), ends_at=timezone.now() - timedelta(minutes=1))
    assert expire_support_grants() == 1
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "devices.tasks.expire_support_grants" in schedule


def test_a_support_view_is_recorded_only_under_a_live_grant(owner, support, grant):
    ungranted = DeviceFactory(owner=owner)
    devices = [grant.device, ungranted]
    assert sharing.support_view_record(devices=devices, staff=support, what="Support list", ip=None) == 1
    view = SupportView.objects.get()
    assert (view.grant, view.staff, view.what) == (grant, support, "Support list")
    event = AccessEvent.objects.get(kind=AccessEventKind.SUPPORT_VIEWED)
    assert (event.device, event.actor, event.detail) == (grant.device, support, "Support list")


def test_no_view_is_recorded_after_a_grant_ran_out(support, grant):
    SupportGrant.objects.filter(pk=grant.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    assert sharing.support_view_record(devices=[grant.device], staff=support, what="Device page", ip=None) == 0


# --- sharing_end_for_device --------------------------------------------------------------------


def test_ending_for_a_device_ends_shares_invitations_and_grants(owner, shared_device, grant):
    invite(owner, shared_device)
    other = DeviceFactory(owner=owner)
    ShareFactory(device=other)
    result = sharing.sharing_end_for_device(shared_device, actor=owner, ip="192.0.2.9")
    assert result == {"shares": 2, "invitations": 1, "grants": 1}
    assert not Share.objects.filter(device=shared_device).exists() and Share.objects.filter(device=other).exists()
    assert Invitation.objects.get(device=shared_device).state == InvitationState.ENDED
    grant.refresh_from_db()
    assert grant.ended_reason == SupportGrant.EndedReason.OWNER_CHANGED
    assert AccessEvent.objects.filter(device=shared_device, kind=AccessEventKind.ENDED_BY_OWNER_CHANGE).count() == 4
