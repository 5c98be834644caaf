"""Sharing a device: invitations, shares (viewer, operator), the maker's support grants, and the
audit trail of all of it (docs/sharing.md).

The claimer stays the one owner; others get a role. Only the owner invites, changes a role,
revokes, cancels an invitation and grants or ends support access; a shared person may leave. Who
may then see or act on a device is decided in `devices.access`, never here.

Every write runs in a transaction with its AccessEvent (actor, address, time), which the owner reads
on the device page. A change of owner ends everything in the same transaction as the change
(`sharing_end_for_device`, called from `claiming.ownership`).

Over 500 lines on purpose: invitations, shares and support grants are one subject with one audit
trail and one end at a change of owner; split, each part would import the others' rules.

Decisions (issue 18):
- An invitation names an email address and a role; the emailed link carries a random token of which
  only a keyed digest is stored (`portal.secrets`, as for transfers), valid 7 days, used once. The
  email names the inviter's address, the product and the serial: nothing the sender typed.
- Invitations are rate-limited as transfer offers are: per inviter and per recipient address, one
  count per email (an invitation to several devices at once is one email).
- Accepting needs the invited address, verified, on the accepting account (as a transfer does).
- A support grant lasts 1 hour to 30 days, optionally allows commands, and is one per device (a new
  one replaces the live one). It ends by itself: `support_grants_expire` runs from beat and writes
  the end; no countdown task. `devices.access` already ignores a grant past its end.
"""

import logging
from datetime import timedelta
from http import HTTPStatus

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from portal import ratelimit
from portal.errors import ApplicationError, Conflict, NotFound, Throttled, ValidationError
from portal.secrets import keyed_digest, random_token

from . import access, outbox
from .models import (
    AccessEvent,
    AccessEventKind,
    Device,
    Invitation,
    InvitationState,
    NotificationPreference,
    Share,
    ShareRole,
    SupportGrant,
    SupportView,
)

logger = logging.getLogger(__name__)

INVITATION_DAYS = 7
INVITATION_PURPOSE = "share-invitation"
# Each invitation emails an address the sender chose, so invitations are limited per sender and per
# recipient (fixed windows), as transfer offers are: enough for a household, too few for bulk mail.
INVITATIONS_PER_USER = ((10, 60 * 60), (30, 24 * 60 * 60))
INVITATIONS_PER_RECIPIENT = (20, 24 * 60 * 60)
# One invitation email names at most this many devices (the device list shares a page at a time).
MAX_DEVICES_PER_INVITATION = 100
GRANT_SHORTEST = timedelta(hours=1)
GRANT_LONGEST = timedelta(days=30)
_EXPIRE_BATCH = 1000


class EmailNotVerified(ApplicationError):
    code = "email_unverified"
    status = HTTPStatus.FORBIDDEN
    message = "Verify your email address before accepting an invitation. Check your inbox for the link we sent."


def invitation_token_digest(token: str) -> str:
    return keyed_digest(token, purpose=INVITATION_PURPOSE)


def _audit(device, kind, *, actor, ip, subject_email="", role="", detail="") -> AccessEvent:
    return AccessEvent(
        device_id=getattr(device, "pk", device),
        kind=kind,
        actor_id=getattr(actor, "pk", None),
        ip=ip,
        subject_email=subject_email,
        role=role,
        detail=detail[:200],
    )


def _record(*events) -> None:
    """Writes the audit entries of a change of access; the devices' open pages hear of it after
    commit (a revoked person's poll is then answered by the access check, not a 304)."""
    AccessEvent.objects.bulk_create(events)
    outbox.live_changed_on_commit({event.device_id for event in events})


def _require_manage(actor, device) -> None:
    # NotFound rather than 403: a service called for someone who cannot manage the device says
    # nothing about it (views refuse earlier, through access.device_for, with the 404/403 rule).
    if not access.may(actor, device, access.MANAGE):
        raise NotFound()


def _role_validate(role) -> str:
    if role not in ShareRole.values:
        message = "Choose viewer or operator."
        raise ValidationError(message, fields={"role": [message]})
    return role


def _addresses_of(user) -> set[str]:
    addresses = {email.lower() for email in EmailAddress.objects.filter(user=user).values_list("email", flat=True)}
    if user.email:
        addresses.add(user.email.lower())
    return addresses


def _has_address(email) -> Q:
    """A share whose person has `email` (their account's address or one of their allauth addresses)."""
    return Q(user__email__iexact=email) | Q(user__emailaddress__email__iexact=email)


# --- invitations -------------------------------------------------------------------------------


def _invitation_count(*, actor, email) -> None:
    """Counts one invitation email against its sender's and its recipient's limits (Throttled, 429)."""
    try:
        ratelimit.sender_and_recipient_attempt(
            scope="share-invitation",
            sender_id=actor.pk,
            recipient_digest=keyed_digest(email, purpose="share-recipient")[:32],
            per_sender=INVITATIONS_PER_USER,
            per_recipient=INVITATIONS_PER_RECIPIENT,
            refusal="Too many invitations were sent for now. Try again in about {minutes} minutes.",
        )
    except Throttled:
        logger.warning("sharing.throttled", extra={"user_id": actor.pk})
        raise


def _invitation_email(*, invitations_and_tokens, email, actor) -> None:
    links = [
        {
            "device": invitation.device,
            "url": settings.PORTAL_BASE_URL + reverse("sharing:invitation", args=[token]),
        }
        for invitation, token in invitations_and_tokens
    ]
    context = {
        "from_email": actor.email,
        "role": ShareRole(invitations_and_tokens[0][0].role).label.lower(),
        "links": links,
        "days": INVITATION_DAYS,
        "portal_name": settings.PORTAL_NAME,
    }
    subject = render_to_string("devices/emails/share_invitation_subject.txt", context).strip()
    body = render_to_string("devices/emails/share_invitation.txt", context)
    # robust: a mail server that is down must not undo the invitations; the owner sees them pending
    # and can cancel and invite again.
    transaction.on_commit(lambda: send_mail(subject, body, None, [email]), robust=True)


@transaction.atomic
def invitations_send(*, devices, email: str, role: str, actor, ip) -> list[tuple[Invitation, str]]:
    """The owner invites the person at `email` to each of `devices` (one or several) with `role`.

    Returns each invitation with its raw token (only the digest is stored); one email lists them all.
    Rules: the owner only (NotFound otherwise); a valid address that is not the owner's own; a
    person who already has access to one of the devices, or a pending invitation to it, is a
    Conflict naming the device; limited per sender and per recipient (Throttled, 429). An expired
    invitation left pending is ended first, so the address can be invited again.
    """
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > Invitation._meta.get_field("email").max_length:
        raise ValidationError("Enter a valid email address.", fields={"email": ["Enter a valid email address."]})
    role = _role_validate(role)
    devices = list({device.pk: device for device in devices}.values())
    if not devices:
        raise ValidationError("Choose at least one device to share.", fields={"devices": ["Choose a device."]})
    if len(devices) > MAX_DEVICES_PER_INVITATION:
        message = f"Share at most {MAX_DEVICES_PER_INVITATION} devices at once."
        raise ValidationError(message, fields={"devices": [message]})
    # Locked while still the actor's: a change of owner waits for this invitation and then ends it,
    # or wins first and this call finds nothing to share.
    locked = list(
        access.devices_visible_to(actor, access.MANAGE)
        .select_for_update()
        .filter(pk__in=[device.pk for device in devices])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if len(locked) != len(devices):
        raise NotFound()
    if email in _addresses_of(actor):
        message = "That is your own address. Enter the address of the person you want to share with."
        raise ValidationError(message, fields={"email": [message]})
    serials = {device.pk: device.serial for device in devices}
    taken = Share.objects.filter(_has_address(email), device_id__in=serials).values_list("device_id", flat=True)
    if taken := sorted(serials[device_id] for device_id in set(taken)):
        raise Conflict(f"{email} already has access to {', '.join(taken)}.", code="already_shared")
    now = timezone.now()
    pending = Invitation.objects.filter(device_id__in=serials, email=email, state=InvitationState.PENDING)
    unexpired = pending.filter(expires_at__gt=now).values_list("device_id", flat=True)
    waiting = sorted(serials[device_id] for device_id in unexpired)
    if waiting:
        raise Conflict(
            f"{email} already has a pending invitation to {', '.join(waiting)}. Cancel it to send a new one.",
            code="already_invited",
        )
    _invitation_count(actor=actor, email=email)
    pending.update(state=InvitationState.ENDED, decided_at=now)  # only expired ones are left
    made = []
    for device in devices:
        token = random_token()
        invitation = Invitation(
            device=device,
            email=email,
            role=role,
            token_digest=invitation_token_digest(token),
            invited_by=actor,
            expires_at=now + timedelta(days=INVITATION_DAYS),
        )
        made.append((invitation, token))
    Invitation.objects.bulk_create([invitation for invitation, _ in made])
    invited = AccessEventKind.INVITED
    _record(*(_audit(device, invited, actor=actor, ip=ip, subject_email=email, role=role) for device in devices))
    _invitation_email(invitations_and_tokens=made, email=email, actor=actor)
    logger.info("sharing.invited", extra={"user_id": actor.pk, "devices": len(made), "role": role})
    return made


def invitation_get_by_token(*, token: str) -> Invitation:
    """The pending, unexpired invitation behind an emailed link; NotFound (unknown, cancelled or
    ended), Conflict (already accepted or declined) or ValidationError (expired) otherwise."""
    invitation = (
        Invitation.objects.select_related("device", "device__product", "invited_by")
        .filter(token_digest=invitation_token_digest(token or ""))
        .first()
    )
    if invitation is None or invitation.state in (InvitationState.CANCELLED, InvitationState.ENDED):
        raise NotFound("This invitation link is not valid any more. Ask the owner to send a new one.")
    if invitation.state == InvitationState.ACCEPTED:
        raise Conflict("This invitation has already been accepted.", code="invitation_accepted")
    if invitation.state == InvitationState.DECLINED:
        raise Conflict("This invitation has been declined.", code="invitation_declined")
    if invitation.expires_at <= timezone.now():
        raise ValidationError(
            "This invitation link has expired. Ask the owner to send a new one.", code="invitation_expired"
        )
    return invitation


def _decide(invitation, state) -> None:
    """Pending → `state`, conditional on it still being pending: a link is used once, even when two
    requests race (the loser gets a Conflict)."""
    changed = Invitation.objects.filter(pk=invitation.pk, state=InvitationState.PENDING).update(
        state=state, decided_at=timezone.now()
    )
    if changed != 1:
        raise Conflict("This invitation is no longer open.", code="invitation_closed")
    invitation.state = state


@transaction.atomic
def invitation_accept(*, token: str, user, ip) -> Share:
    """The invited person accepts: the device is shared with them in the invitation's role.

    Only an account with the invited address, verified, may accept (as a transfer); the owner cannot
    accept an invitation to their own device, nor someone who already has access. The device must
    still be its inviter's: an invitation does not survive a change of owner."""
    invitation = invitation_get_by_token(token=token)
    if not EmailAddress.objects.filter(user=user, verified=True).exists():
        raise EmailNotVerified()
    if not EmailAddress.objects.filter(user=user, email__iexact=invitation.email, verified=True).exists():
        raise ApplicationError(
            f"This invitation was sent to {invitation.email}. Log in with that address to accept it.",
            code="invitation_wrong_account",
            status=HTTPStatus.FORBIDDEN,
        )
    device = invitation.device
    if access.may(user, device, access.MANAGE):
        raise Conflict("This device is yours already.", code="invitation_own_device")
    # The row lock orders this against a change of owner (which ends the invitation).
    inviter = invitation.invited_by
    if inviter is None or not access.devices_visible_to(inviter, access.MANAGE).select_for_update().filter(
        pk=device.pk
    ).exists():
        raise Conflict("This device is no longer shared by the person who invited you.", code="invitation_stale")
    if Share.objects.filter(device=device, user=user).exists():
        raise Conflict("You already have access to this device.", code="already_shared")
    _decide(invitation, InvitationState.ACCEPTED)
    share = Share.objects.create(device=device, user=user, role=invitation.role, invited_by=invitation.invited_by)
    _record(
        _audit(device, AccessEventKind.ACCEPTED, actor=user, ip=ip, subject_email=invitation.email, role=share.role)
    )
    logger.info("sharing.accepted", extra={"device_id": str(device.pk), "user_id": user.pk, "role": share.role})
    return share


@transaction.atomic
def invitation_decline(*, token: str, user, ip) -> Invitation:
    """The invited person turns the invitation down; its link stops working. The link is the proof:
    whoever holds it may decline (accepting needs the invited address)."""
    invitation = invitation_get_by_token(token=token)
    _decide(invitation, InvitationState.DECLINED)
    _record(
        _audit(
            invitation.device,
            AccessEventKind.DECLINED,
            actor=user,
            ip=ip,
            subject_email=invitation.email,
            role=invitation.role,
        )
    )
    logger.info("sharing.declined", extra={"device_id": str(invitation.device_id)})
    return invitation


@transaction.atomic
def invitation_cancel(*, invitation: Invitation, actor, ip) -> Invitation:
    """The owner withdraws a pending invitation; its link stops working at once."""
    _require_manage(actor, invitation.device)
    _decide(invitation, InvitationState.CANCELLED)
    _record(
        _audit(
            invitation.device,
            AccessEventKind.CANCELLED,
            actor=actor,
            ip=ip,
            subject_email=invitation.email,
            role=invitation.role,
        )
    )
    logger.info("sharing.cancelled", extra={"device_id": str(invitation.device_id), "invitation_id": invitation.pk})
    return invitation


# --- shares ------------------------------------------------------------------------------------


@transaction.atomic
def share_role_change(*, share: Share, role: str, actor, ip) -> Share:
    """The owner makes a viewer an operator or back; the same role again changes nothing."""
    _require_manage(actor, share.device)
    role = _role_validate(role)
    if role == share.role:
        return share
    before = share.role
    Share.objects.filter(pk=share.pk).update(role=role)
    share.role = role
    _record(
        _audit(
            share.device,
            AccessEventKind.ROLE_CHANGED,
            actor=actor,
            ip=ip,
            subject_email=share.user.email,
            role=role,
            detail=f"{ShareRole(before).label} → {ShareRole(role).label}",
        )
    )
    logger.info("sharing.role_changed", extra={"device_id": str(share.device_id), "share_id": share.pk, "role": role})
    return share


def _share_end(share, kind, *, actor, ip) -> None:
    """Deletes the share and the status-email choice its person made for the device."""
    Share.objects.filter(pk=share.pk).delete()
    NotificationPreference.objects.filter(user_id=share.user_id, device_id=share.device_id).delete()
    _record(_audit(share.device, kind, actor=actor, ip=ip, subject_email=share.user.email, role=share.role))


@transaction.atomic
def share_revoke(*, share: Share, actor, ip) -> None:
    """The owner takes a person's access away; the device leaves their list at once."""
    _require_manage(actor, share.device)
    _share_end(share, AccessEventKind.REVOKED, actor=actor, ip=ip)
    logger.info("sharing.revoked", extra={"device_id": str(share.device_id), "share_id": share.pk})


@transaction.atomic
def share_leave(*, share: Share, user, ip) -> None:
    """A person gives up a device shared with them."""
    if share.user_id != user.pk:
        raise NotFound()
    _share_end(share, AccessEventKind.LEFT, actor=user, ip=ip)
    logger.info("sharing.left", extra={"device_id": str(share.device_id), "share_id": share.pk})


# --- the maker's support -----------------------------------------------------------------------


def _grant_detail(grant) -> str:
    commands = "commands allowed" if grant.allow_commands else "no commands"
    return f"Until {timezone.localtime(grant.ends_at):%Y-%m-%d %H:%M %Z}, {commands}"


@transaction.atomic
def support_grant_start(*, device: Device, duration: timedelta, allow_commands: bool, actor, ip) -> SupportGrant:
    """The owner lets the maker's support see the device (and command it, with `allow_commands`)
    for `duration`, 1 hour to 30 days. A live grant of the device is replaced (one per device)."""
    if not isinstance(duration, timedelta) or not GRANT_SHORTEST <= duration <= GRANT_LONGEST:
        message = "Choose a period from 1 hour to 30 days."
        raise ValidationError(message, fields={"duration": [message]})
    _require_manage(actor, device)
    # Locked while still the actor's, as for invitations: a change of owner then ends this grant.
    if not access.devices_visible_to(actor, access.MANAGE).select_for_update().filter(pk=device.pk).exists():
        raise NotFound()
    now = timezone.now()
    events = []
    for old in SupportGrant.objects.filter(device=device, ended_at__isnull=True):
        SupportGrant.objects.filter(pk=old.pk).update(ended_at=now, ended_reason=SupportGrant.EndedReason.REPLACED)
        events.append(_audit(device, AccessEventKind.GRANT_ENDED, actor=actor, ip=ip, detail="Replaced by a new grant"))
    grant = SupportGrant.objects.create(
        device=device, granted_by=actor, ends_at=now + duration, allow_commands=bool(allow_commands)
    )
    events.append(_audit(device, AccessEventKind.GRANT_STARTED, actor=actor, ip=ip, detail=_grant_detail(grant)))
    _record(*events)
    logger.info("sharing.grant_started", extra={"device_id": str(device.pk), "grant_id": grant.pk})
    return grant


@transaction.atomic
def support_grant_end(*, grant: SupportGrant, actor, ip) -> SupportGrant:
    """The owner ends support access before its time; support loses the device at once."""
    _require_manage(actor, grant.device)
    now = timezone.now()
    changed = SupportGrant.objects.filter(pk=grant.pk, ended_at__isnull=True).update(
        ended_at=now, ended_reason=SupportGrant.EndedReason.OWNER
    )
    if changed != 1:
        raise Conflict("This support access has already ended.", code="grant_ended")
    grant.ended_at, grant.ended_reason = now, SupportGrant.EndedReason.OWNER
    _record(_audit(grant.device, AccessEventKind.GRANT_ENDED, actor=actor, ip=ip, detail="Ended by the owner"))
    logger.info("sharing.grant_ended", extra={"device_id": str(grant.device_id), "grant_id": grant.pk})
    return grant


def support_grants_expire(*, now=None) -> int:
    """Ends the grants whose time ran out, each with its audit entry (from beat, every minute).

    Access never waited for this (devices.access compares ends_at at query time); this writes the
    end down for the owner's audit. skip_locked lets two beat runs share the work without ending a
    grant twice. Returns how many ended."""
    now = now or timezone.now()
    ended = 0
    while True:
        with transaction.atomic():
            due = list(
                SupportGrant.objects.select_for_update(skip_locked=True)
                .filter(ended_at__isnull=True, ends_at__lte=now)
                .order_by("ends_at")[:_EXPIRE_BATCH]
            )
            if not due:
                return ended
            SupportGrant.objects.filter(pk__in=[grant.pk for grant in due]).update(
                ended_at=now, ended_reason=SupportGrant.EndedReason.EXPIRED
            )
            _record(
                *(
                    _audit(grant.device_id, AccessEventKind.GRANTS_EXPIRED, actor=None, ip=None, detail="Time ran out")
                    for grant in due
                )
            )
        ended += len(due)
        logger.info("sharing.grants_expired", extra={"count": len(due)})


def support_view_record(*, devices, staff, what: str, ip) -> int:
    """Records that support staff `staff` looked at `devices` (`what`: the page or action), for each
    one under a live grant: a SupportView and an AccessEvent the owner reads. Returns how many."""
    grants = list(access.live_grants().filter(device__in=[device.pk for device in devices]))
    if not grants:
        return 0
    with transaction.atomic():
        SupportView.objects.bulk_create([SupportView(grant=grant, staff=staff, what=what[:120]) for grant in grants])
        _record(
            *(
                _audit(grant.device_id, AccessEventKind.SUPPORT_VIEWED, actor=staff, ip=ip, detail=what)
                for grant in grants
            )
        )
    return len(grants)


# --- a change of owner -------------------------------------------------------------------------


def sharing_end_for_device(device: Device, *, actor, ip) -> dict:
    """Ends every share, pending invitation and live support grant of `device`, each with an audit
    entry (kind ended_by_owner_change, which the next owner is not shown).

    Called by `claiming.ownership.ownership_cleanup`, in the transaction of each change away from an
    owner (a PIN handover, an accepted transfer, a reset, an account's deletion); claims by code and
    pre-claims take only devices nobody owns, which a reset already left with nothing shared.
    Returns counts: {"shares", "invitations", "grants"}."""
    now = timezone.now()
    kind = AccessEventKind.ENDED_BY_OWNER_CHANGE
    events = []
    shares = list(Share.objects.filter(device=device).select_related("user"))
    if shares:
        Share.objects.filter(pk__in=[share.pk for share in shares]).delete()
        NotificationPreference.objects.filter(device=device, user_id__in=[share.user_id for share in shares]).delete()
        events += [
            _audit(device, kind, actor=actor, ip=ip, subject_email=share.user.email, role=share.role, detail="Share")
            for share in shares
        ]
    invitations = list(Invitation.objects.filter(device=device, state=InvitationState.PENDING))
    if invitations:
        Invitation.objects.filter(pk__in=[invitation.pk for invitation in invitations]).update(
            state=InvitationState.ENDED, decided_at=now
        )
        events += [
            _audit(device, kind, actor=actor, ip=ip, subject_email=i.email, role=i.role, detail="Invitation")
            for i in invitations
        ]
    grants = SupportGrant.objects.filter(device=device, ended_at__isnull=True).update(
        ended_at=now, ended_reason=SupportGrant.EndedReason.OWNER_CHANGED
    )
    if grants:
        events.append(_audit(device, kind, actor=actor, ip=ip, detail="Support access"))
    _record(*events)
    result = {"shares": len(shares), "invitations": len(invitations), "grants": grants}
    if events:
        logger.info("sharing.ended_by_owner_change", extra={"device_id": str(device.pk), **result})
    return result
