"""Ownership: claiming by code or by serial + PIN, release, pre-claim, PIN settings (transfers:
`claiming.transfers`).

The owner's forms, the Django admin and the integrator API all call these functions, so the rules,
the limits on guessing and the audit trail live here and nowhere else. Every change of owner writes
an OwnershipEvent and a DeviceEvent (`device.claimed` / `device.released`) in its transaction;
every route moves the device through `claiming.ownership.ownership_change`.
"""

import hmac
import logging
from http import HTTPStatus

from allauth.account.models import EmailAddress
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from devices import access, codes
from devices.models import ClaimCode, Device
from devices.services import pin_digest, pin_validate
from portal import ratelimit
from portal.errors import ApplicationError, Conflict, Throttled, ValidationError

from . import limits
from .models import OwnershipEvent, OwnershipEventKind
from .ownership import HANDOVER_CLEARS, fields_set, ownership_change, ownership_cleanup

logger = logging.getLogger(__name__)

# One wording for a wrong code, an unknown serial and a wrong PIN: nothing tells which one it was.
INVALID_MESSAGE = (
    "That code, serial number or PIN does not match a device you can claim. Check the label and try again."
)
ALREADY_CLAIMED_MESSAGE = (
    "This device has already been claimed. If it is yours, ask its current owner to reset or transfer it."
)


class ClaimError(ApplicationError):
    code = "claim_invalid"
    message = INVALID_MESSAGE


class AlreadyClaimed(ClaimError, Conflict):
    code = "already_claimed"
    status = Conflict.status
    message = ALREADY_CLAIMED_MESSAGE


class EmailNotVerified(ApplicationError):
    code = "email_unverified"
    status = HTTPStatus.FORBIDDEN
    message = "Verify your email address before claiming a device. Check your inbox for the link we sent."


# --- limits ------------------------------------------------------------------------------------


def _rejection_log(*, user, reason):
    logger.warning("claim.rejected", extra={"reason": reason, "user_id": getattr(user, "pk", None)})


def require_verified_email(user):
    """EmailNotVerified unless `user` proved an address: a claim, or a transfer's acceptance, needs one."""
    if not EmailAddress.objects.filter(user=user, verified=True).exists():
        raise EmailNotVerified()


def _verified_addresses(user) -> list[str]:
    # Pre-claims are stored lower-cased; an address only counts once its owner proved it.
    return [
        email.lower() for email in EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    ]


def _open_to(user) -> Q:
    """The unowned devices `user` may claim: not pre-claimed, or pre-claimed for one of their
    verified addresses. Part of the claim's conditional UPDATE, so a pre-claim made meanwhile holds."""
    return Q(owner__isnull=True) & (Q(preclaim_email="") | Q(preclaim_email__in=_verified_addresses(user)))


def devices_open_to(*, user, devices) -> list[Device]:
    """Of `devices`, the ones `user` may claim now (see _open_to): what the claim form offers."""
    addresses = set(_verified_addresses(user))
    return [d for d in devices if d.owner_id is None and (not d.preclaim_email or d.preclaim_email in addresses)]


# --- claim -------------------------------------------------------------------------------------


def claim_code_lookup(*, user, code: str, ip) -> tuple[ClaimCode, list[Device]]:
    """Finds a claim code and the devices it covers, counting a miss as a failed guess.

    Used by the claim form to list a batch code's devices before the owner picks them. Raises
    ClaimError (same wording as every miss), Throttled past the limits.
    """
    guess = limits.guess_count(user=user, ip=ip)
    normal = codes.normalize(code)
    claim_code = ClaimCode.objects.filter(digest=codes.digest(normal)).first() if normal else None
    if claim_code is None:
        _rejection_log(user=user, reason="unknown_code")
        raise ClaimError()
    ratelimit.forgive(*guess)
    if claim_code.expires_at and claim_code.expires_at <= timezone.now():
        raise ClaimError("This code has expired. Ask the seller for a new one.", code="claim_code_expired")
    devices = list(claim_code.devices.select_related("product").order_by("serial"))
    return claim_code, devices


def _claim(*, user, candidates, via, application, ip, actor=None, kind=OwnershipEventKind.CLAIMED, detail=""):
    """Gives every still-unowned device of `candidates` to `user`; returns the ones this call won.

    The change of owner's conditional UPDATE also asks that the device is still open to `user`
    (_open_to): a device pre-claimed for another address is left alone, as if owned.
    """
    won = ownership_change(
        devices=candidates,
        new_owner=user,
        via=via,
        actor=actor or user,
        ip=ip,
        guard=_open_to(user),
        application=application,
        kind=kind,
        detail=detail or f"Claimed with {via}",
    )
    if won:
        logger.info("claim.claimed", extra={"user_id": user.pk, "devices": len(won), "via": via})
    return won


@transaction.atomic
def device_claim_by_code(*, user, code: str, serials=None, application=None, ip) -> list[Device]:
    """Claims the unowned devices a claim code covers: those named in `serials`, or all of them.

    Rules: verified email; failed guesses limited per user and per IP (Throttled, 429); a wrong
    code gets the same message as a wrong PIN; a code whose devices are all owned (or pre-claimed
    for another address) is "already claimed" (409); serials the code does not cover are refused.
    """
    require_verified_email(user)
    _claim_code, devices = claim_code_lookup(user=user, code=code, ip=ip)
    if serials:
        wanted = {serial.strip() for serial in serials if serial and serial.strip()}
        covered = {device.serial for device in devices}
        if not wanted <= covered:
            raise ClaimError(
                "Some of the chosen serial numbers are not covered by this code.",
                code="claim_serial_not_covered",
                fields={"serials": ["Not covered by this code."]},
            )
        devices = [device for device in devices if device.serial in wanted]
    if not devices:
        # A code that covers nothing (its devices were deleted) is no better than a wrong one.
        raise ClaimError()
    if all(access.may(user, device, access.MANAGE) for device in devices):
        raise Conflict("You already own the devices this code covers.", code="already_yours")
    won = _claim(
        user=user, candidates=devices_open_to(user=user, devices=devices), via="code", application=application, ip=ip
    )
    if not won:
        raise AlreadyClaimed()
    return won


def _device_by_serial_as_read(serial):
    """The device whose serial reads as `serial` on its label, case ignored; the exact spelling
    wins when two serials differ only in case, and with several others none does."""
    matches = list(Device.objects.select_related("product").filter(serial__iexact=serial)[:5])
    exact = [device for device in matches if device.serial == serial]
    if exact:
        return exact[0]
    return matches[0] if len(matches) == 1 else None


@transaction.atomic
def device_claim_by_pin(*, user, serial: str, pin: str, application=None, ip) -> Device:
    """Claims one device by its serial number and PIN (seed 002). The serial is matched as the
    label would be read: case and surrounding spaces ignored.

    Only a `claimable` device with a PIN can be claimed; success clears the PIN. When the
    owner turned claiming back on with a new PIN, the device is handed over: the previous owner's
    links and credentials go, as on a release. Failures count per user and per IP, and wrong PINs
    per (serial, user), per (serial, IP) and per serial (see claiming.limits).
    """
    require_verified_email(user)
    serial = (serial or "").strip()
    pin = (pin or "").strip()
    if not serial or not pin:
        raise ClaimError()
    limits.pin_lock_check(serial)
    guess = limits.guess_count(user=user, ip=ip)
    try:
        serial_guess = limits.pin_guess_count(serial, user=user, ip=ip)
    except Throttled:
        ratelimit.forgive(*guess)  # turned away unjudged: it counts nowhere
        raise
    guess.extend(serial_guess)
    device = _device_by_serial_as_read(serial)
    # The digest is computed even for an unknown serial so both paths take the same time.
    offered = pin_digest(pin)
    pin_ok = device is not None and bool(device.pin_digest) and hmac.compare_digest(offered, device.pin_digest)
    # An unowned device with claiming off is answered, counted and locked as a wrong PIN: it tells nothing.
    if not pin_ok or (device.owner_id is None and not device.claimable):
        _rejection_log(
            user=user, reason="not_claimable" if pin_ok else "unknown_serial" if device is None else "wrong_pin"
        )
        limits.pin_wrong(serial, serial_guess)
        raise ClaimError()
    ratelimit.forgive(*guess)
    if access.may(user, device, access.MANAGE):
        raise Conflict("You already own this device.", code="already_yours")
    if not device.claimable:
        raise AlreadyClaimed()
    if device.owner_id is None and not devices_open_to(user=user, devices=[device]):
        raise AlreadyClaimed()  # pre-claimed for another address: answered as if owned
    # Conditional on the state just read: a concurrent claim, pre-claim or PIN change makes this a no-op.
    won = ownership_change(
        devices=[device],
        new_owner=user,
        via="pin",
        actor=user,
        ip=ip,
        expected_owner_id=device.owner_id,
        guard=Q(claimable=True, pin_digest=device.pin_digest, preclaim_email=device.preclaim_email),
        application=application,
        detail="Claimed with PIN",
    )
    if not won:
        raise AlreadyClaimed()
    logger.info("claim.claimed", extra={"user_id": user.pk, "devices": 1, "via": "pin"})
    return won[0]


# --- release -----------------------------------------------------------------------------------


@transaction.atomic
def device_release(*, device: Device, actor, ip) -> Device:
    """Resets ownership (seed 000): no owner, no app links, credentials revoked, open transfer
    offers cancelled, shares, invitations and support grants ended, PIN cleared. The claim code
    stays valid so the next owner can use the same label. A device without a code is passed on with
    a new PIN instead (claim by PIN, no reset)."""
    previous_owner_id = device.owner_id
    if previous_owner_id is None:
        raise Conflict("This device has no owner.", code="not_owned")
    changed = Device.objects.filter(pk=device.pk, owner_id=previous_owner_id).update(
        owner=None, owned_since=None, **HANDOVER_CLEARS
    )
    if changed != 1:
        raise Conflict("The device's owner changed meanwhile. Reload the page.", code="owner_changed")
    device.owner, device.owned_since = None, None
    fields_set(device, HANDOVER_CLEARS)
    OwnershipEvent.objects.create(device=device, kind=OwnershipEventKind.RELEASED, actor=actor, owner=None, ip=ip)
    ownership_cleanup(device=device, actor=actor, reason="reset", ip=ip)
    logger.info("claim.released", extra={"device_id": str(device.pk), "actor_id": getattr(actor, "pk", None)})
    return device


@transaction.atomic
def devices_release_of_deleted_account(*, user) -> int:
    """Deleting an account is a change of owner for each of its devices: each is reset as its
    owner's own reset would, before the foreign key would only blank the owner and leave the
    links, credentials, PIN and name of that ownership in place. Returns how many were reset."""
    devices = list(access.devices_visible_to(user, access.MANAGE).select_related("product"))
    for device in devices:
        device_release(device=device, actor=None, ip=None)
    return len(devices)


# --- pre-claim ---------------------------------------------------------------------------------


def _verified_user_for(email):
    address = (
        EmailAddress.objects.filter(email__iexact=email, verified=True).select_related("user").order_by("pk").first()
    )
    return address.user if address else None


@transaction.atomic
def device_preclaim(*, devices, email: str, actor) -> dict:
    """An OEM admin assigns unowned devices to the person with `email`.

    With a verified account for that address the devices are theirs at once; otherwise the address
    is kept on the device and applied when someone verifies it (see `device_preclaims_apply`).
    Owned devices are skipped. Returns counts: {"claimed", "pending", "skipped"}.
    """
    email = (email or "").strip()
    if "@" not in email:
        raise ValidationError("Enter a valid email address.", fields={"email": ["Enter a valid email address."]})
    devices = list(devices)
    unowned = [device for device in devices if device.owner_id is None]
    skipped = len(devices) - len(unowned)
    user = _verified_user_for(email)
    if user is not None:
        won = _claim(
            user=user,
            candidates=unowned,
            via="preclaim",
            application=None,
            ip=None,
            actor=actor,
            kind=OwnershipEventKind.PRE_CLAIMED,
            detail=f"Pre-claimed for {email}",
        )
        result = {"claimed": len(won), "pending": 0, "skipped": skipped + len(unowned) - len(won)}
    else:
        pending = Device.objects.filter(pk__in=[d.pk for d in unowned], owner__isnull=True)
        count = pending.update(preclaim_email=email.lower())
        OwnershipEvent.objects.bulk_create(
            [
                OwnershipEvent(
                    device=device,
                    kind=OwnershipEventKind.PRE_CLAIMED,
                    actor=actor,
                    owner=None,
                    detail=f"Waiting for {email.lower()} to sign up",
                )
                for device in unowned
            ]
        )
        result = {"claimed": 0, "pending": count, "skipped": skipped + len(unowned) - count}
    logger.info("claim.preclaimed", extra={"actor_id": getattr(actor, "pk", None), **result})
    return result


@transaction.atomic
def device_preclaims_apply(*, user, email: str) -> list[Device]:
    """Gives `user` the devices pre-claimed for `email`, once that address is verified.

    Called from allauth's email_confirmed signal. Devices someone else claimed meanwhile stay theirs.
    """
    candidates = list(Device.objects.filter(preclaim_email=email.lower(), owner__isnull=True))
    if not candidates:
        return []
    won = _claim(
        user=user, candidates=candidates, via="preclaim", application=None, ip=None, detail=f"Pre-claimed for {email}"
    )
    return won


# --- PIN settings ------------------------------------------------------------------------------


@transaction.atomic
def device_pin_set(*, device: Device, pin: str | None, claimable: bool, actor, ip) -> Device:
    """The owner sets a new PIN and/or turns PIN claiming on or off (seed 002).

    Turning claiming on hands the device to whoever enters serial + PIN next, so it needs a PIN:
    a new one, or one this owner set (a change of owner clears the PIN, so no earlier one is left).
    A new PIN lifts any lock from earlier wrong guesses.
    """
    pin = (pin or "").strip()
    if pin:
        pin = pin_validate(pin)
    if claimable and not pin and not device.pin_digest:
        message = "Set a PIN to turn PIN claiming on."
        raise ValidationError(message, fields={"pin": [message]})
    update = {"claimable": claimable}
    if pin:
        update["pin_digest"] = pin_digest(pin)
    Device.objects.filter(pk=device.pk).update(**update)
    fields_set(device, update)
    changes = (["new PIN"] if pin else []) + ["claiming on" if claimable else "claiming off"]
    OwnershipEvent.objects.create(
        device=device,
        kind=OwnershipEventKind.PIN_CHANGED,
        actor=actor,
        owner=device.owner,
        ip=ip,
        detail=", ".join(changes).capitalize(),
    )
    if pin:
        limits.pin_lock_clear(serial=device.serial)
    logger.info("claim.pin_changed", extra={"device_id": str(device.pk), "claimable": claimable})
    return device
