"""Transfers: the owner offers a device to someone by email; the recipient accepts and owns it.

The offer page, the device page's notice and the recipient's page call these functions, so the
limits on offers and the audit trail live here. Accepting moves the device through
`claiming.ownership.ownership_change`, like every change of owner.
"""

import logging
from datetime import timedelta
from http import HTTPStatus

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from devices import access
from devices.models import Device
from portal import ratelimit
from portal.errors import ApplicationError, Conflict, NotFound, Throttled, ValidationError
from portal.secrets import keyed_digest, random_token

from .models import OwnershipEventKind, Transfer
from .ownership import ownership_change
from .services import require_verified_email

logger = logging.getLogger(__name__)

TRANSFER_DAYS = 7
TRANSFER_PURPOSE = "transfer"
# Each offer emails an address the sender chose, so offers are limited per sender and per recipient
# (fixed windows): enough to hand over a household's devices, too few to send mail in bulk.
TRANSFER_OFFERS_PER_USER = ((10, 60 * 60), (30, 24 * 60 * 60))
TRANSFER_OFFERS_PER_RECIPIENT = (20, 24 * 60 * 60)


def _transfer_offer_count(*, actor, to_email):
    """Counts an offer against its sender's and its recipient's limits; Throttled (429) past them."""
    try:
        ratelimit.sender_and_recipient_attempt(
            scope="transfer-offer",
            sender_id=actor.pk,
            recipient_digest=keyed_digest(to_email, purpose="transfer-recipient")[:32],
            per_sender=TRANSFER_OFFERS_PER_USER,
            per_recipient=TRANSFER_OFFERS_PER_RECIPIENT,
            refusal="Too many transfer offers were sent for now. Try again in about {minutes} minutes,"
            " or hand the device over with a PIN instead.",
        )
    except Throttled:
        logger.warning("transfer.throttled", extra={"user_id": actor.pk})
        raise


def transfer_token_digest(token: str) -> str:
    return keyed_digest(token, purpose=TRANSFER_PURPOSE)


@transaction.atomic
def transfer_offer(*, device: Device, to_email: str, actor, ip) -> tuple[Transfer, str]:
    """The owner offers the device to the person at `to_email`, who gets a link valid 7 days.

    Returns the offer and the raw token (only its digest is stored). A new offer replaces an open one.
    Offers are limited per sender and per recipient (Throttled, 429). The email names the product
    and serial, never the owner's nickname: nothing the sender typed reaches the recipient.
    """
    to_email = (to_email or "").strip().lower()
    if "@" not in to_email:
        raise ValidationError("Enter a valid email address.", fields={"to_email": ["Enter a valid email address."]})
    if not access.may(actor, device, access.MANAGE):
        raise NotFound()
    if EmailAddress.objects.filter(user=actor, email__iexact=to_email).exists():
        message = "That is your own address. Enter the address of the person who should own the device."
        raise ValidationError(message, fields={"to_email": [message]})
    _transfer_offer_count(actor=actor, to_email=to_email)
    now = timezone.now()
    Transfer.objects.filter(device=device, accepted_at__isnull=True, cancelled_at__isnull=True).update(cancelled_at=now)
    token = random_token()
    transfer = Transfer.objects.create(
        device=device,
        from_user=actor,
        to_email=to_email,
        token_digest=transfer_token_digest(token),
        expires_at=now + timedelta(days=TRANSFER_DAYS),
    )
    url = settings.PORTAL_BASE_URL + reverse("claiming:transfer-accept", args=[token])
    context = {
        "transfer": transfer,
        "device": device,
        "url": url,
        "from_email": actor.email,
        "days": TRANSFER_DAYS,
        "portal_name": settings.PORTAL_NAME,
    }
    subject = render_to_string("claiming/emails/transfer_offer_subject.txt", context).strip()
    body = render_to_string("claiming/emails/transfer_offer.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, None, [to_email]))
    logger.info("transfer.offered", extra={"device_id": str(device.pk), "transfer_id": transfer.pk})
    return transfer, token


def transfer_get_by_token(*, token: str) -> Transfer:
    """The open, unexpired offer behind an emailed link, or NotFound/ValidationError."""
    transfer = (
        Transfer.objects.select_related("device", "device__product", "from_user")
        .filter(token_digest=transfer_token_digest(token or ""))
        .first()
    )
    if transfer is None or transfer.cancelled_at is not None:
        raise NotFound("This transfer link is not valid any more. Ask the owner to send a new one.")
    if transfer.accepted_at is not None:
        raise Conflict("This transfer has already been accepted.", code="transfer_accepted")
    if transfer.expires_at <= timezone.now():
        raise ValidationError(
            "This transfer link has expired. Ask the owner to send a new one.", code="transfer_expired"
        )
    return transfer


@transaction.atomic
def transfer_accept(*, token: str, user, ip) -> Device:
    """The recipient accepts: the device moves to them at once and the previous owner loses access,
    its links and credentials. Only an account with the offered address, verified, may accept."""
    transfer = transfer_get_by_token(token=token)
    require_verified_email(user)
    if not EmailAddress.objects.filter(user=user, email__iexact=transfer.to_email, verified=True).exists():
        raise ApplicationError(
            f"This transfer was offered to {transfer.to_email}. Log in with that address to accept it.",
            code="transfer_wrong_account",
            status=HTTPStatus.FORBIDDEN,
        )
    stale = Conflict("This device is no longer available for transfer.", code="transfer_stale")
    # Both conditional: the offer must still be open and the device still the offerer's.
    now = timezone.now()
    taken = Transfer.objects.filter(pk=transfer.pk, accepted_at__isnull=True, cancelled_at__isnull=True).update(
        accepted_at=now, accepted_by=user
    )
    if taken != 1:
        raise stale
    moved = ownership_change(
        devices=[transfer.device],
        new_owner=user,
        via="transfer",
        actor=user,
        ip=ip,
        expected_owner_id=transfer.from_user_id,
        kind=OwnershipEventKind.TRANSFERRED,
        detail="Transfer accepted",
        at=now,
    )
    if not moved:
        raise stale
    [device] = moved
    logger.info("transfer.accepted", extra={"device_id": str(device.pk), "transfer_id": transfer.pk})
    return device


@transaction.atomic
def transfer_cancel(*, transfer: Transfer, actor, ip) -> Transfer:
    """The owner withdraws an open offer; its link stops working at once."""
    if transfer.from_user_id != actor.pk:
        raise NotFound()
    changed = Transfer.objects.filter(pk=transfer.pk, accepted_at__isnull=True, cancelled_at__isnull=True).update(
        cancelled_at=timezone.now()
    )
    if changed != 1:
        raise Conflict("This transfer is no longer open.", code="transfer_closed")
    transfer.refresh_from_db()
    logger.info("transfer.cancelled", extra={"transfer_id": transfer.pk, "ip_known": bool(ip)})
    return transfer
