"""Device status emails: owners hear when their devices go offline and when they come back.

Owners choose for all their devices and may override per device (NotificationPreference; both
emails are on until they choose). After each stale sweep the notifier mails every owner one email
listing every device whose status changed since the owner last heard about it, never one email
per device. A device is named in an email at most once an hour: a change inside that hour is held
back (NotificationState.pending) and mailed on a later sweep if it still stands, so a flapping
device costs one email an hour and the owner's last word about it is always its current status.

Going offline is found by the sweep itself (it hands over the ids). Coming back online is found
through NotificationState: a device its owner knows as offline that is online now. No event
cursor is needed, and a run that failed is caught up by the next one.

A device's recipients are its owner and the people it is shared with (`devices.access.recipients_of`).
The owner hears unless they chose otherwise; a viewer or operator hears only after subscribing to
that device (a per-device choice of their own: their all-devices choice is about the devices they
own). Unsubscribing is the same one click for everyone. The state (what was last said about a
device, and when) is kept once per device, for its owner, and covers all its recipients.
"""

import logging
import smtplib
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from portal.errors import ValidationError

from . import access
from .models import Device, DeviceStatus, NotificationPreference, NotificationState

logger = logging.getLogger(__name__)

NOTIFY_INTERVAL = timedelta(hours=1)
# Both emails are on for an owner who never chose.
DEFAULT_OFFLINE = True
DEFAULT_ONLINE = True
# ...and off for a device shared with someone, until they subscribe to it.
SHARED_DEFAULT = (False, False)
# An email names this many devices per section and counts the rest.
MAX_LISTED = 50
UNSUBSCRIBE_SALT = "devices.notifications.unsubscribe"
_CHUNK = 500


# --- preferences -------------------------------------------------------------------------------


def notification_preference_get(*, user, device=None, shared=False) -> NotificationPreference:
    """The user's saved choice for `device` (or for all devices); an unsaved default if none: both
    emails for an owner, none for a device `shared` with them (until they subscribe)."""
    preference = NotificationPreference.objects.filter(user=user, device=device).first()
    if preference is None:
        offline, online = SHARED_DEFAULT if shared else (DEFAULT_OFFLINE, DEFAULT_ONLINE)
        preference = NotificationPreference(user=user, device=device, offline=offline, online=online)
    return preference


def notification_preference_list_for_owner(user, devices) -> list[NotificationPreference]:
    """The owner's per-device choices for the devices they may see (`devices`: a queryset from
    devices.access.devices_visible_to), by device serial."""
    return list(
        NotificationPreference.objects.filter(user=user, device__in=devices)
        .select_related("device")
        .order_by("device__serial")
    )


@transaction.atomic
def notification_preference_set(*, user, device=None, offline: bool, online: bool) -> NotificationPreference:
    """Saves the owner's choice for one device (the caller checked they may see it) or, with no
    device, for all of their devices."""
    preference, _ = NotificationPreference.objects.update_or_create(
        user=user, device=device, defaults={"offline": offline, "online": online}
    )
    logger.info(
        "notifications.preference_set",
        extra={
            "user_id": user.pk,
            "device_id": str(device.pk) if device else None,
            "offline": offline,
            "online": online,
        },
    )
    return preference


def notification_preference_clear(*, user, device) -> None:
    """The device follows the owner's choice for all devices again."""
    NotificationPreference.objects.filter(user=user, device=device).delete()


@transaction.atomic
def notifications_unsubscribe(*, user) -> None:
    """No more status emails for any of the owner's devices (until they choose again)."""
    NotificationPreference.objects.filter(user=user, device__isnull=False).delete()
    NotificationPreference.objects.update_or_create(
        user=user, device=None, defaults={"offline": False, "online": False}
    )
    logger.info("notifications.unsubscribed", extra={"user_id": user.pk})


def unsubscribe_token(user) -> str:
    """A signed token naming the user: the unsubscribe link works without logging in."""
    return signing.dumps(user.pk, salt=UNSUBSCRIBE_SALT)


def unsubscribe_user(token: str):
    """The user an unsubscribe token names; ValidationError when it is forged or the user is gone."""
    try:
        user_pk = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        raise ValidationError("This unsubscribe link is not valid.", code="invalid_link") from None
    user = get_user_model().objects.filter(pk=user_pk).first()
    if user is None:
        raise ValidationError("This unsubscribe link is not valid.", code="invalid_link")
    return user


def unsubscribe_url(user) -> str:
    return settings.PORTAL_BASE_URL + reverse("devices:notifications-unsubscribe", args=[unsubscribe_token(user)])


# --- the notifier ------------------------------------------------------------------------------


@dataclass
class _Digest:
    """One recipient's email: the devices that went offline and those back online."""

    offline: list = field(default_factory=list)
    online: list = field(default_factory=list)


@dataclass
class _Mailed:
    """A device named in this sweep's emails: its state once one of `recipients` heard, and what
    to save instead if none did (pending: a later sweep tries again)."""

    state: NotificationState
    fallback: NotificationState
    recipients: list


def notifications_send(*, now=None, went_offline=()) -> int:
    """Mails each owner one email about every device whose status changed since they last heard
    (`went_offline`: ids of owned devices the sweep just marked offline). Returns emails sent.

    A device mailed within the last hour is held back (pending) and mailed on a later sweep if
    its change still stands; a change the owner chose not to hear about is recorded silently
    (so "back online" still follows an unmailed "offline"). A failed send leaves the change
    pending for the next sweep. With nothing to do this is one query.
    """
    now = now or timezone.now()
    # Served by the partial index notification_attention.
    attention = NotificationState.objects.filter(
        Q(pending=True) | Q(status=DeviceStatus.OFFLINE, device__status=DeviceStatus.ONLINE)
    ).values_list("device_id", flat=True)
    candidates = list(dict.fromkeys([*went_offline, *attention]))
    if not candidates:
        return 0

    digests: dict[int, _Digest] = {}
    mailed: list[_Mailed] = []
    quiet_states, orphaned = [], []
    for start in range(0, len(candidates), _CHUNK):
        chunk = candidates[start : start + _CHUNK]
        _plan(chunk, now, digests, mailed, quiet_states, orphaned)

    emails = _emails(digests)
    delivered = _send(emails)
    to_save = list(quiet_states)
    for device in mailed:
        # A recipient without an address counts as told; when nobody was told (a failed send), the
        # change stays pending for the next sweep.
        told = any(user_id in delivered or user_id not in emails for user_id in device.recipients)
        to_save.append(device.state if told else device.fallback)
    for user_id in delivered:
        digest = digests[user_id]
        logger.info(
            "notifications.sent",
            extra={"user_id": user_id, "offline": len(digest.offline), "online": len(digest.online)},
        )
    _states_save(to_save, orphaned)
    return len(delivered)


def _send(emails) -> set:
    """Sends each owner's message over one connection; returns the owners whose message went."""
    delivered = set()
    if not emails:
        return delivered
    mail = get_connection()
    try:
        mail.open()
        for owner_id, message in emails.items():
            try:
                mail.send_messages([message])
            except (smtplib.SMTPException, OSError):
                logger.error("notifications.send_failed", extra={"user_id": owner_id}, exc_info=True)
            else:
                delivered.add(owner_id)
    except (smtplib.SMTPException, OSError):
        logger.error("notifications.mail_unavailable", exc_info=True)
    finally:
        mail.close()
    return delivered


def _plan(device_ids, now, digests, mailed, quiet_states, orphaned):
    """Decides, for each device of `device_ids`, whether its recipients are mailed now, later or never."""
    devices = list(
        Device.objects.filter(pk__in=device_ids)
        .select_related("product")
        .only("id", "serial", "name", "owner_id", "status", "last_seen_at", "product__name")
    )
    states = {state.device_id: state for state in NotificationState.objects.filter(device_id__in=device_ids)}
    recipients = access.recipients_of(devices)
    user_ids = {user_id for owner_id, shared in recipients.values() for user_id in (owner_id, *shared)}
    choices = {
        (pref.user_id, pref.device_id): (pref.offline, pref.online)
        for pref in NotificationPreference.objects.filter(user_id__in=user_ids).filter(
            Q(device__isnull=True) | Q(device_id__in=device_ids)
        )
    }
    for device in devices:
        saved = states.get(device.pk)
        owner_id, shared = recipients.get(device.pk, (None, []))
        if owner_id is None:
            if saved is not None:
                orphaned.append(device.pk)
            continue
        if saved is not None and saved.user_id == owner_id:
            known, notified_at, pending = saved.status, saved.notified_at, saved.pending
        else:
            # A new owner starts from "online" and no email: they never heard about this device.
            known, notified_at, pending = DeviceStatus.ONLINE, None, False
        current = device.status
        if current == known or current == DeviceStatus.NEVER_SEEN:
            if saved is not None and (saved.pending or saved.user_id != owner_id):
                quiet_states.append(_state(device, known, notified_at, pending=False))
            continue
        went_offline = current == DeviceStatus.OFFLINE
        owner_default = choices.get((owner_id, None), (DEFAULT_OFFLINE, DEFAULT_ONLINE))
        owner_choice = choices.get((owner_id, device.pk), owner_default)
        wanting = [
            user_id
            for user_id, (wants_offline, wants_online) in [
                (owner_id, owner_choice),
                *((user_id, choices.get((user_id, device.pk), SHARED_DEFAULT)) for user_id in shared),
            ]
            if (wants_offline if went_offline else wants_online)
        ]
        if not wanting:
            quiet_states.append(_state(device, current, notified_at, pending=False))
        elif notified_at is not None and now - notified_at < NOTIFY_INTERVAL:
            if not pending:
                quiet_states.append(_state(device, known, notified_at, pending=True))
        else:
            for user_id in wanting:
                digest = digests.setdefault(user_id, _Digest())
                (digest.offline if went_offline else digest.online).append(device)
            mailed.append(
                _Mailed(
                    state=_state(device, current, now, pending=False),
                    fallback=_state(device, known, notified_at, pending=True),
                    recipients=wanting,
                )
            )


def _state(device, status, notified_at, *, pending) -> NotificationState:
    return NotificationState(
        device_id=device.pk,
        user_id=access.owner_id_of(device),
        status=status,
        notified_at=notified_at,
        pending=pending,
    )


def _states_save(states, orphaned):
    with transaction.atomic():
        if orphaned:
            NotificationState.objects.filter(device_id__in=orphaned).delete()
        if states:
            NotificationState.objects.bulk_create(
                states,
                batch_size=_CHUNK,
                update_conflicts=True,
                unique_fields=["device"],
                update_fields=["user", "status", "notified_at", "pending"],
            )


def _device_line(device, device_url) -> dict:
    return {
        "name": device.display_name,
        "serial": device.serial,
        "product": device.product.name,
        "last_seen": _when(device.last_seen_at) if device.last_seen_at else "",
        "url": device_url(device),
    }


def _when(moment) -> str:
    # Formatted here rather than with the template's `date` filter: a sweep may list thousands
    # of devices, and the filter costs several times more per call.
    local = timezone.localtime(moment)
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def _device_url_builder():
    """Device page URLs by substitution into one reversed URL: a reverse() per device listed
    would be the largest cost of a big sweep's emails."""
    placeholder = "00000000-0000-0000-0000-000000000000"
    template = settings.PORTAL_BASE_URL + reverse("devices:detail", args=[placeholder])
    return lambda device: template.replace(placeholder, str(device.pk))


def _subject(offline, online) -> str:
    if offline and online:
        text = f"{len(offline)} offline, {len(online)} back online"
    elif len(offline) == 1:
        text = f"{offline[0].display_name} is offline"
    elif offline:
        text = f"{len(offline)} devices are offline"
    elif len(online) == 1:
        text = f"{online[0].display_name} is back online"
    else:
        text = f"{len(online)} devices are back online"
    return f"[{settings.PORTAL_NAME}] {text}"


def _emails(digests) -> dict[int, EmailMultiAlternatives]:
    """One message per owner with an address, in text and HTML, with a one-click unsubscribe."""
    users = get_user_model().objects.filter(pk__in=list(digests)).exclude(email="").only("pk", "email")
    settings_url = settings.PORTAL_BASE_URL + reverse("devices:notifications")
    device_url = _device_url_builder()
    messages = {}
    for user in users:
        digest = digests[user.pk]
        by_name = lambda device: (device.display_name.lower(), device.serial)  # noqa: E731
        offline = sorted(digest.offline, key=by_name)
        online = sorted(digest.online, key=by_name)
        leave_url = unsubscribe_url(user)
        context = {
            "portal_name": settings.PORTAL_NAME,
            "offline": [_device_line(d, device_url) for d in offline[:MAX_LISTED]],
            "offline_more": max(len(offline) - MAX_LISTED, 0),
            "online": [_device_line(d, device_url) for d in online[:MAX_LISTED]],
            "online_more": max(len(online) - MAX_LISTED, 0),
            "settings_url": settings_url,
            "unsubscribe_url": leave_url,
        }
        message = EmailMultiAlternatives(
            subject=_subject(offline, online),
            body=render_to_string("devices/emails/status.txt", context),
            to=[user.email],
            headers={
                # RFC 8058 one-click unsubscribe: mail clients POST to the link.
                "List-Unsubscribe": f"<{leave_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        message.attach_alternative(render_to_string("devices/emails/status.html", context), "text/html")
        messages[user.pk] = message
    return messages
