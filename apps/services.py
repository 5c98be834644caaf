"""Applications, device links, connect links and webhook delivery.

Delivery is at least once and the truth is in the database: the outbox relay hands DeviceEvents to
`deliveries_fan_out`, which writes one Delivery row per (event, linked application) and queues a
send after commit. A Delivery's `next_attempt_at` is both its schedule and its lease: whoever moves
it forward with a conditional UPDATE owns the next attempt, so a lost task message, a killed worker
or a broker that was down only delays a delivery until the beat task (`deliveries_send_due`, every
30 s) finds it due again.
"""

import base64
import hashlib
import hmac
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
import urllib3
from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from devices.models import DeviceEvent, DeviceEventType
from devices.outbox import event_record, events_record
from portal.errors import Conflict, NotFound, ValidationError
from portal.secrets import decrypt, encrypt, keyed_digest, random_crockford, random_token

from . import ssrf
from .models import (
    Application,
    AppLink,
    CallbackAuthStyle,
    Connection,
    ConnectLink,
    Delivery,
    DeliveryStatus,
    EndedLink,
)
from .selectors import application_list_for_owner, event_audiences, events_heard_by

logger = logging.getLogger(__name__)

# The integrator API authenticates `Basic AppId:Secret` against the digest made with this purpose.
APP_SECRET_PURPOSE = "app-secret"
CONNECT_LINK_PURPOSE = "connect-link"
CONNECT_LINK_TTL = timedelta(hours=1)

SECRET_BYTES = 32
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 200
SIGNING_SECRET_PREFIX = "whsec_"
# An HTTP token (RFC 9110): what may stand before the secret in `Authorization: <prefix> <secret>`.
_TOKEN_PREFIX_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]*$")
_SECRET_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces: it travels in a header

# Waits after the 1st, 2nd, ... failed attempt; after the last one the delivery is `failed`.
RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
RETRY_JITTER = 0.2
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
MAX_RETRY_AFTER = 10 * 3600
PAUSE_AFTER_FAILING = timedelta(days=5)
# How long a replaced signing secret keeps signing beside the new one (docs/integrators.md).
SIGNING_SECRET_OVERLAP = timedelta(hours=24)
# A queued send owns its delivery this long; if the message is lost, the beat task takes it after.
ENQUEUE_LEASE = timedelta(minutes=2)
# Waits this short are queued with a countdown; longer ones are left to the beat task.
SHORT_WAIT_SECONDS = 60
RESPONSE_READ_LIMIT = 64 * 1024
DUE_BATCH = 500
# Deliveries a send task takes at once (fewer queue round trips and queries per delivery), the time
# after which it starts no new send, and how many successes it writes at a time.
CHUNK_SIZE = 50
CHUNK_BUDGET_SECONDS = 60
SUCCESS_FLUSH = 25
SUCCESS_FLUSH_SECONDS = 0.5


# --- applications ------------------------------------------------------------------------------


def _field_error(field, message):
    return ValidationError(message, fields={field: [message]})


def secret_generate() -> str:
    return random_token(SECRET_BYTES)


def signing_secret_generate() -> str:
    return SIGNING_SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def app_id_generate() -> str:
    return "app_" + random_crockford(20).lower()


def secret_validate(secret: str) -> str:
    if not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH:
        raise _field_error("secret", f"A Secret has {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters.")
    if not _SECRET_RE.match(secret):
        raise _field_error("secret", "A Secret may only hold printable ASCII characters, without spaces.")
    return secret


def token_prefix_validate(prefix: str) -> str:
    prefix = (prefix or "").strip()
    limit = Application._meta.get_field("token_prefix").max_length
    if len(prefix) > limit or not _TOKEN_PREFIX_RE.match(prefix):
        raise _field_error("token_prefix", f"A prefix is one word of letters, digits or -._~ (at most {limit}).")
    return prefix


def callback_url_validate(url: str) -> str:
    """The callback URL as it will be stored, or a ValidationError on `callback_url` (SSRF guard)."""
    url = (url or "").strip()
    if not url:
        return ""
    if len(url) > Application._meta.get_field("callback_url").max_length:
        raise _field_error("callback_url", "This URL is too long.")
    try:
        ssrf.check_url(url)
    except ssrf.UnsafeTarget as exc:
        raise _field_error("callback_url", exc.message) from None
    return url


def _name_validate(name: str) -> str:
    name = " ".join((name or "").split())
    limit = Application._meta.get_field("name").max_length
    if not name:
        raise _field_error("name", "Give the application a name.")
    if len(name) > limit:
        raise _field_error("name", f"A name has at most {limit} characters.")
    return name


def _set_secret(application, secret):
    application.secret_encrypted = encrypt(secret)
    application.secret_digest = keyed_digest(secret, purpose=APP_SECRET_PURPOSE)


@transaction.atomic
def application_create(
    *,
    owner,
    name,
    callback_url="",
    auth_style=CallbackAuthStyle.BASIC,
    token_prefix="Token",  # noqa: S107 - the Authorization scheme word, not a secret
    secret=None,
    managed=False,
    description="",
    registration_url="",
    logo_url="",
) -> tuple[Application, str]:
    """Creates an application and returns it with its raw Secret, which is never readable again.

    The Secret is generated (32 random bytes) unless the owner typed one; it is stored encrypted
    (it goes into callback headers) and as a keyed digest (API authentication). The callback URL
    passes the SSRF guard. The signing secret is separate and generated here.
    """
    name = _name_validate(name)
    callback_url = callback_url_validate(callback_url)
    if auth_style not in CallbackAuthStyle.values:
        raise _field_error("auth_style", "Choose Basic or Token.")
    token_prefix = token_prefix_validate(token_prefix)
    secret = secret_validate(secret) if secret else secret_generate()
    application = Application(
        app_id=app_id_generate(),
        owner=owner,
        name=name,
        callback_url=callback_url,
        auth_style=auth_style,
        token_prefix=token_prefix,
        managed=managed,
        description=description,
        registration_url=registration_url,
        logo_url=logo_url,
        signing_secret_encrypted=encrypt(signing_secret_generate()),
    )
    _set_secret(application, secret)
    application.save()
    logger.info("application.created", extra={"app_id": application.app_id, "owner_id": getattr(owner, "pk", None)})
    return application, secret


@transaction.atomic
def application_update(*, application, name, callback_url, auth_style, token_prefix) -> Application:
    """Changes an application's settings; the callback URL passes the SSRF guard again."""
    application.name = _name_validate(name)
    application.callback_url = callback_url_validate(callback_url)
    if auth_style not in CallbackAuthStyle.values:
        raise _field_error("auth_style", "Choose Basic or Token.")
    application.auth_style = auth_style
    application.token_prefix = token_prefix_validate(token_prefix)
    fields = ["name", "callback_url", "auth_style", "token_prefix"]
    if application.callback_url and application.callback_off_at is not None:
        application.callback_off_at, application.callback_off_reason = None, ""
        fields += ["callback_off_at", "callback_off_reason"]
    application.save(update_fields=fields)
    logger.info("application.updated", extra={"app_id": application.app_id})
    return application


@transaction.atomic
def application_secret_replace(*, application, secret=None) -> str:
    """Replaces the Secret (generated, or the owner's own) and returns it; the old one stops working."""
    secret = secret_validate(secret) if secret else secret_generate()
    _set_secret(application, secret)
    application.save(update_fields=["secret_encrypted", "secret_digest"])
    logger.info("application.secret_replaced", extra={"app_id": application.app_id})
    return secret


@transaction.atomic
def application_signing_secret_rotate(*, application) -> str:
    """A new signing secret, returned. The one it replaces keeps signing beside it (one signature
    each) for SIGNING_SECRET_OVERLAP, then is dropped; a second rotation within that time drops it
    at once and keeps the one it replaces instead."""
    signing_secret = signing_secret_generate()
    application.previous_signing_secret_encrypted = application.signing_secret_encrypted
    application.previous_signing_secret_expires_at = timezone.now() + SIGNING_SECRET_OVERLAP
    application.signing_secret_encrypted = encrypt(signing_secret)
    application.save(
        update_fields=[
            "signing_secret_encrypted",
            "previous_signing_secret_encrypted",
            "previous_signing_secret_expires_at",
        ]
    )
    logger.info("application.signing_secret_rotated", extra={"app_id": application.app_id})
    return signing_secret


def application_signing_secret(application) -> str:
    return decrypt(application.signing_secret_encrypted)


def signing_overlap_until(application, *, now=None):
    """When the previous signing secret stops signing, while it still does; else None."""
    expires_at = application.previous_signing_secret_expires_at
    if application.previous_signing_secret_encrypted and expires_at and expires_at > (now or timezone.now()):
        return expires_at
    return None


def application_signing_secrets(application, *, now=None) -> list[str]:
    """The secrets that sign a webhook now: the current one, and the previous one during its overlap."""
    secrets = [application_signing_secret(application)]
    if signing_overlap_until(application, now=now):
        secrets.append(decrypt(application.previous_signing_secret_encrypted))
    return secrets


@transaction.atomic
def application_delete(*, application) -> None:
    """Deletes an application with its links and deliveries; linked devices hear `device.unlinked`."""
    links = list(AppLink.objects.filter(application=application).select_related("device"))
    events_record(
        [
            DeviceEvent(
                device=link.device,
                type=DeviceEventType.UNLINKED,
                data={"application_id": application.app_id, "reason": "application_deleted"},
            )
            for link in links
        ]
    )
    logger.info("application.deleted", extra={"app_id": application.app_id})
    application.delete()


def application_pause(*, application, reason, notify=False) -> bool:
    """Stops deliveries to `application` (they stay pending). Returns whether this call paused it.

    The conditional UPDATE makes the pause, and so the owner's email, happen once however many
    workers see the failure at the same time.
    """
    now = timezone.now()
    paused = Application.objects.filter(pk=application.pk, paused_at__isnull=True).update(
        paused_at=now, pause_reason=reason[:200]
    )
    application.paused_at, application.pause_reason = now, reason[:200]
    if not paused:
        return False
    logger.warning("application.paused", extra={"app_id": application.app_id, "reason": reason})
    owner = application.owner
    if notify and owner is not None and owner.email:
        context = {
            "application": application,
            "reason": reason,
            "url": settings.PORTAL_BASE_URL + reverse("apps:detail", args=[application.app_id]),
            "portal_name": settings.PORTAL_NAME,
        }
        subject = render_to_string("apps/emails/paused_subject.txt", context).strip()
        body = render_to_string("apps/emails/paused.txt", context)
        transaction.on_commit(lambda: send_mail(subject, body, None, [owner.email]), robust=True)
    return True


CALLBACK_GONE_ERROR = "Not sent: the callback answered 410 Gone and was turned off."


@transaction.atomic
def application_callback_off(*, application, url, reason) -> bool:
    """Turns off the callback only: the receiver at `url` said it is gone (410). The API keeps
    working and events stay readable at /api/v1/events; what was waiting to be sent is marked
    failed, so the owner can replay it once a callback is set again. The owner sees a note on the
    application page and gets an email. Returns whether this call turned it off.

    Conditional on the URL that answered, so a late 410 from an old URL never turns off the
    callback the owner has set since; and several workers seeing the 410 email once.
    """
    now = timezone.now()
    turned_off = Application.objects.filter(pk=application.pk, callback_url=url).update(
        callback_url="", callback_off_at=now, callback_off_reason=reason[:200]
    )
    if not turned_off:
        return False
    application.callback_url, application.callback_off_at, application.callback_off_reason = "", now, reason[:200]
    Delivery.objects.filter(application=application, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=CALLBACK_GONE_ERROR
    )
    logger.warning("application.callback_off", extra={"app_id": application.app_id, "reason": reason})
    owner = application.owner
    if owner is not None and owner.email:
        context = {
            "application": application,
            "reason": reason,
            "url": settings.PORTAL_BASE_URL + reverse("apps:detail", args=[application.app_id]),
            "portal_name": settings.PORTAL_NAME,
        }
        subject = render_to_string("apps/emails/callback_off_subject.txt", context).strip()
        body = render_to_string("apps/emails/callback_off.txt", context)
        transaction.on_commit(lambda: send_mail(subject, body, None, [owner.email]), robust=True)
    return True


@transaction.atomic
def application_resume(*, application) -> int:
    """Resumes deliveries: what waited (held events, retries) goes out at once, oldest first, in
    one task so one worker sends them in order; then the usual schedule applies to each. Returns
    how many are pending."""
    Application.objects.filter(pk=application.pk).update(paused_at=None, pause_reason="", failing_since=None)
    application.paused_at, application.pause_reason, application.failing_since = None, "", None
    now = timezone.now()
    lease = now + ENQUEUE_LEASE
    pending = Delivery.objects.filter(application=application, status=DeliveryStatus.PENDING)
    ids = list(pending.order_by("pk").values_list("pk", flat=True)[:DUE_BATCH])
    Delivery.objects.filter(pk__in=ids).update(next_attempt_at=lease)
    # Beyond the first batch, the beat task sends the rest (oldest first) as they fall due.
    pending.exclude(pk__in=ids).update(next_attempt_at=now)
    _deliveries_enqueue(ids, lease, chunk_size=DUE_BATCH)
    logger.info("application.resumed", extra={"app_id": application.app_id, "pending": len(ids)})
    return pending.count()


# --- links -------------------------------------------------------------------------------------


def _device_owned_by(device, actor):
    if actor is None or device.owner_id is None or device.owner_id != actor.pk:
        raise NotFound("No such device.")


def _visible_to(application, user):
    if not application_list_for_owner(user).filter(pk=application.pk).exists():
        raise NotFound("No such application.")


@transaction.atomic
def device_link(*, device, application, actor, linked_at=None) -> AppLink:
    """Links the device to the application, so it hears the device's events and may act on it.

    Only the device's owner may link it, and only to an application they can see. Linking twice
    changes nothing. Records `device.linked`. `linked_at` dates a link made within a claim from
    that claim's device.claimed, which the application then hears.
    """
    _device_owned_by(device, actor)
    _visible_to(application, actor)
    link, created = AppLink.objects.get_or_create(
        device=device, application=application, defaults={"created_at": linked_at or timezone.now()}
    )
    if created:
        event_record(device=device, type=DeviceEventType.LINKED, data={"application_id": application.app_id})
        logger.info("device.linked", extra={"device_id": str(device.pk), "app_id": application.app_id})
    return link


@transaction.atomic
def device_unlink(*, device, application, actor) -> None:
    """Unlinks the device from the application (only its owner may). Records `device.unlinked`."""
    _device_owned_by(device, actor)
    link = AppLink.objects.filter(device=device, application=application).first()
    if link is None:
        raise NotFound("This device is not linked to that application.")
    _links_delete(device=device, links=[link], reason="unlinked")


@transaction.atomic
def device_links_remove(*, device, actor=None) -> int:
    """Removes every link of the device (ownership reset or transfer); each application hears
    `device.unlinked`. Returns how many links were removed."""
    links = list(AppLink.objects.filter(device=device).select_related("application"))
    if links:
        _links_delete(device=device, links=links, reason="ownership_changed")
    return len(links)


def _links_delete(*, device, links, reason):
    """Records `device.unlinked` for each link, then ends the links.

    Each ended link is kept (EndedLink) with its time span, so events recorded while it lasted,
    this unlink included, still reach its application however late the relay runs.
    """
    events_record(
        [
            DeviceEvent(
                device=device,
                type=DeviceEventType.UNLINKED,
                data={"application_id": link.application.app_id, "reason": reason},
            )
            for link in links
        ]
    )
    unlinked_at = timezone.now()
    EndedLink.objects.bulk_create(
        [
            EndedLink(
                application_id=link.application_id, device=device, linked_at=link.created_at, unlinked_at=unlinked_at
            )
            for link in links
        ]
    )
    AppLink.objects.filter(pk__in=[link.pk for link in links]).delete()
    for link in links:
        logger.info("device.unlinked", extra={"device_id": str(device.pk), "app_id": link.application.app_id})


# --- connect links -----------------------------------------------------------------------------


def _connect_digest(token: str) -> str:
    return keyed_digest(token, purpose=CONNECT_LINK_PURPOSE)


@transaction.atomic
def connect_link_create(*, application) -> tuple[ConnectLink, str]:
    """A single-use link, valid one hour, that adds `application` to the list of whoever accepts it.

    Only the token's digest is stored; the URL is returned once.
    """
    token = random_token(32)
    link = ConnectLink.objects.create(
        application=application,
        token_digest=_connect_digest(token),
        expires_at=timezone.now() + CONNECT_LINK_TTL,
    )
    url = settings.PORTAL_BASE_URL + reverse("apps:connect", args=[token])
    logger.info("connect_link.created", extra={"app_id": application.app_id, "link_id": link.pk})
    return link, url


_CONNECT_INVALID = "This link has expired or was already used. Ask the application for a new one."


def connect_link_get(*, token: str) -> ConnectLink:
    """The connect link of `token` while it can still be accepted; NotFound otherwise."""
    link = (
        ConnectLink.objects.filter(token_digest=_connect_digest(token or ""), used_at__isnull=True)
        .select_related("application")
        .first()
    )
    if link is None or link.expires_at <= timezone.now():
        raise NotFound(_CONNECT_INVALID, code="connect_link_invalid")
    return link


@transaction.atomic
def connect_link_accept(*, token: str, user) -> Application:
    """Uses the link (once) and adds its application to `user`'s list."""
    link = connect_link_get(token=token)
    # Single use under concurrency: only the request that flips used_at wins.
    won = ConnectLink.objects.filter(pk=link.pk, used_at__isnull=True, expires_at__gt=timezone.now()).update(
        used_at=timezone.now(), used_by=user
    )
    if not won:
        raise NotFound(_CONNECT_INVALID, code="connect_link_invalid")
    application = link.application
    if application.owner_id != user.pk:
        Connection.objects.get_or_create(application=application, user=user)
    logger.info("connect_link.accepted", extra={"app_id": application.app_id, "user_id": user.pk})
    return application


@transaction.atomic
def connection_remove(*, application, user) -> None:
    """Removes a connected application from the user's list, unlinking their devices from it."""
    deleted, _ = Connection.objects.filter(application=application, user=user).delete()
    if not deleted:
        raise NotFound("No such application.")
    for link in AppLink.objects.filter(application=application, device__owner=user).select_related("device"):
        _links_delete(device=link.device, links=[link], reason="unlinked")


# --- fan-out -----------------------------------------------------------------------------------


def deliveries_fan_out(events):
    """Outbox consumer: one Delivery per (event, application that hears it and has a callback);
    who hears what is `event_audiences`.

    A paused application's rows are held (pending, no next attempt): they go out when it is
    resumed. Written in bulk; the unique (event, application) pair makes a second hand-over of the
    same event a no-op. Sends are queued after commit.
    """
    if not events:
        return 0
    audiences = event_audiences(events, applications=Application.objects.exclude(callback_url=""))
    if not audiences:
        return 0
    # Fresh rows carry this lease, which tells them apart from rows an earlier hand-over wrote.
    lease = timezone.now() + ENQUEUE_LEASE
    rows = [
        Delivery(application_id=application_id, event=event, event_type=event.type, next_attempt_at=lease)
        for event in events
        for application_id in audiences.get(event.pk, ())
    ]
    Delivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    fresh = Delivery.objects.filter(
        event_id__in=[event.pk for event in events], next_attempt_at=lease, status=DeliveryStatus.PENDING
    ).values_list("pk", "application__paused_at")
    ids, held = [], []
    for pk, paused_at in fresh:
        (ids if paused_at is None else held).append(pk)
    if held:
        Delivery.objects.filter(pk__in=held).update(next_attempt_at=None)
    _deliveries_enqueue(ids, lease)
    return len(ids)


def _deliveries_enqueue(ids, lease, *, countdown=None, chunk_size=CHUNK_SIZE):
    if ids:
        transaction.on_commit(
            lambda: _deliveries_publish(ids, lease, countdown=countdown, chunk_size=chunk_size), robust=True
        )


def _deliveries_publish(ids, lease, *, countdown=None, chunk_size=CHUNK_SIZE):
    """Queues the sends, `chunk_size` deliveries a task. Nothing is lost when the broker is down:
    the rows fall due when their lease ends and the beat task queues them again."""
    from .tasks import deliveries_send as deliveries_send_task

    for start in range(0, len(ids), chunk_size):
        chunk = list(ids[start : start + chunk_size])
        try:
            deliveries_send_task.apply_async((chunk,), {"lease": lease.isoformat()}, countdown=countdown)
        except OperationalError:
            # Each failed publish waits for the broker's connect timeout: stop at the first.
            logger.error("delivery.publish_failed", extra={"deliveries": len(ids)}, exc_info=True)
            return


# --- owner actions on deliveries ---------------------------------------------------------------


def _requeue(queryset) -> int:
    lease = timezone.now() + ENQUEUE_LEASE
    ids = list(queryset.values_list("pk", flat=True)[:DUE_BATCH])
    Delivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=lease, last_error=""
    )
    _deliveries_enqueue(ids, lease)
    return len(ids)


def _replayable(application):
    """The application's deliveries it may be sent again: tests, and events it hears."""
    heard = events_heard_by(application).values("pk")
    return Delivery.objects.filter(application=application).filter(Q(event__isnull=True) | Q(event_id__in=heard))


@transaction.atomic
def delivery_retry(*, delivery) -> None:
    """Sends one delivery again at once, with a fresh schedule."""
    if delivery.status == DeliveryStatus.SUCCEEDED:
        raise Conflict("This delivery has already succeeded.", code="delivery_succeeded")
    if not delivery.application.callback_url:
        raise Conflict("Set a callback URL first.", code="no_callback")
    if not _replayable(delivery.application).filter(pk=delivery.pk).exists():
        raise Conflict("This application does not hear this event.", code="event_not_heard")
    _requeue(Delivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.SUCCEEDED))


@transaction.atomic
def deliveries_replay_failed(*, application) -> int:
    """Sends every failed delivery of the application again, with a fresh schedule."""
    if not application.callback_url:
        raise Conflict("Set a callback URL first.", code="no_callback")
    total = 0
    failed = _replayable(application).filter(status=DeliveryStatus.FAILED)
    while batch := _requeue(failed):
        total += batch
    return total


@transaction.atomic
def delivery_send_test(*, application) -> Delivery:
    """Queues a `ping` event to the callback, so the owner can check the set-up."""
    if not application.callback_url:
        raise Conflict("Set a callback URL first.", code="no_callback")
    lease = timezone.now() + ENQUEUE_LEASE
    event_id = str(uuid.uuid4())
    delivery = Delivery.objects.create(
        application=application,
        event=None,
        event_type="ping",
        payload={
            "id": event_id,
            "type": "ping",
            "created_at": _iso(timezone.now()),
            "device": None,
            "data": {"message": "A test event from the portal."},
        },
        next_attempt_at=lease,
    )
    _deliveries_enqueue([delivery.pk], lease)
    return delivery


# --- sending -----------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_payload(delivery) -> dict:
    if delivery.event_id is None:
        return delivery.payload
    event = delivery.event
    device = event.device
    return {
        "id": str(event.pk),
        "type": event.type,
        "created_at": _iso(event.created_at),
        "device": {
            "id": str(device.pk),
            "serial": device.serial,
            "product": device.product.slug,
            "name": event.device_name,
        },
        "data": event.data,
    }


def webhook_signature(signing_secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the
    base64-decoded part of the secret after `whsec_`."""
    key = base64.b64decode(signing_secret.removeprefix(SIGNING_SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def authorization_header(application) -> str:
    secret = decrypt(application.secret_encrypted)
    if application.auth_style == CallbackAuthStyle.BASIC:
        return "Basic " + base64.b64encode(f"{application.app_id}:{secret}".encode()).decode()
    prefix = application.token_prefix.strip()
    return f"{prefix} {secret}" if prefix else secret


def user_agent() -> str:
    product = re.sub(r"[^A-Za-z0-9]+", "-", settings.PORTAL_NAME).strip("-") or "Portal"
    return f"{product}-Webhooks/1.0 (+{settings.PORTAL_BASE_URL})"


def webhook_credentials(application) -> tuple[str, list[str]]:
    """(Authorization header, signing secrets): decrypted once per application and chunk."""
    return authorization_header(application), application_signing_secrets(application)


def webhook_request(delivery, *, now=None, credentials=None) -> tuple[bytes, dict]:
    """The body and headers of one attempt (signed with this attempt's timestamp)."""
    payload = webhook_payload(delivery)
    body = json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
    timestamp = int((now or timezone.now()).timestamp())
    authorization, signing_secrets = credentials or webhook_credentials(delivery.application)
    message_id = payload["id"]
    # Standard Webhooks: several signatures, space-separated; a receiver accepts any it can verify.
    signatures = " ".join(
        webhook_signature(secret, message_id=message_id, timestamp=timestamp, body=body) for secret in signing_secrets
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent(),
        "Authorization": authorization,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
    return body, headers


_http_lock = threading.Lock()
_http_session = None
_http_pid = None


def http_session() -> requests.Session:
    """One connection pool per worker process, so sends to one receiver reuse connections."""
    global _http_session, _http_pid
    if _http_session is None or _http_pid != os.getpid():
        with _http_lock:
            if _http_session is None or _http_pid != os.getpid():
                _http_session, _http_pid = ssrf.session_create(), os.getpid()
    return _http_session


def _send_lease(count) -> timedelta:
    # Longer than a task can spend on its deliveries, so only a dead worker's are ever taken over.
    budget = CHUNK_BUDGET_SECONDS if count > 1 else 0
    return timedelta(seconds=budget + 2 * settings.WEBHOOK_TIMEOUT_SECONDS + 30)


def _claim(delivery_ids, lease, now) -> list[Delivery]:
    """Takes the next attempt of those deliveries no other worker has; returns them, loaded.

    One conditional UPDATE decides; its new `next_attempt_at` (this call's own timestamp) then
    tells the rows this call took apart from the others.
    """
    # The paused check is an IN (subquery) on applications, not a join: with a join Django moves the
    # whole WHERE into a subquery, and PostgreSQL would not re-check next_attempt_at on the row a
    # concurrent claim just changed, so two workers could take the same attempt.
    active = Application.objects.filter(paused_at__isnull=True).values("pk")
    rows = Delivery.objects.filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING, application_id__in=active)
    rows = rows.filter(next_attempt_at=lease) if lease is not None else rows.filter(next_attempt_at__lte=now)
    claimed_until = now + _send_lease(len(delivery_ids))
    # Counted when taken, so a delivery that kills its worker still runs out of attempts.
    if not rows.update(next_attempt_at=claimed_until, attempts=F("attempts") + 1):
        return []
    return list(
        Delivery.objects.filter(pk__in=delivery_ids, next_attempt_at=claimed_until)
        .select_related("application__owner", "event__device__product")
        .order_by("pk")
    )


def _post(url, body, headers):
    """(status code, Retry-After seconds or None, error text). Error texts never quote the URL,
    the headers or the response, which could hold secrets."""
    try:
        # Prepared by hand: Session.post would merge session-level settings the portal never sets.
        request = requests.PreparedRequest()
        request.prepare(method="POST", url=url, headers=headers, data=body)
        response = http_session().send(
            request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS, allow_redirects=False, stream=True
        )
    except ssrf.UnsafeTarget as exc:
        return None, None, exc.message
    except requests.exceptions.SSLError:
        return None, None, "TLS handshake or certificate check failed."
    except requests.exceptions.ConnectTimeout:
        return None, None, "Connection timed out."
    except requests.exceptions.ReadTimeout:
        return None, None, f"No response within {settings.WEBHOOK_TIMEOUT_SECONDS} s."
    except requests.exceptions.ConnectionError:
        return None, None, "Could not connect to the callback."
    except requests.exceptions.RequestException as exc:
        return None, None, f"Request failed ({type(exc).__name__})."
    try:
        # Drained (so the connection is reused) up to a size and a time; past either, or on any
        # error, the connection is dropped. The timeout bounds each read, not the whole answer:
        # read1 takes what has arrived instead of waiting for a full buffer, and no read starts
        # once the timeout has passed, so a receiver trickling or stalling its body costs at most
        # twice the timeout.
        read = 0
        drain_until = time.monotonic() + settings.WEBHOOK_TIMEOUT_SECONDS
        while read <= RESPONSE_READ_LIMIT and time.monotonic() < drain_until:
            chunk = response.raw.read1(8192, decode_content=False)
            if not chunk:
                break
            read += len(chunk)
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError):
        pass  # the status line is what counts
    finally:
        response.close()
    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
    if 200 <= response.status_code < 300:
        return response.status_code, None, ""
    if 300 <= response.status_code < 400:
        return response.status_code, retry_after, f"Redirect ({response.status_code}) not followed."
    reason = (response.reason or "")[:60]
    return response.status_code, retry_after, f"The callback answered {response.status_code} {reason}".strip()


def _retry_after_seconds(value) -> int | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, min(int((moment - timezone.now()).total_seconds()), MAX_RETRY_AFTER))


def retry_delay(attempts: int, retry_after: int | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: the schedule ±20 %, and never
    before the receiver's Retry-After."""
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    delay = base * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def delivery_send(*, delivery_id, lease=None) -> str | None:
    """Makes one attempt of a delivery if this caller can take it; returns the outcome
    (`succeeded`, `retrying`, `failed`) or None when there was nothing to do."""
    return deliveries_send(delivery_ids=[delivery_id], lease=lease).get(delivery_id)


def deliveries_send(*, delivery_ids, lease=None) -> dict:
    """One attempt of each delivery this caller can take, in turn over the worker's connection
    pool; returns {delivery id: outcome}.

    `lease` is the `next_attempt_at` the queuing side set: only the task carrying it may take the
    deliveries before they are due again. Successes are written in bulk (a crash before that only
    means they are sent again: at least once). A task stops starting sends after
    CHUNK_BUDGET_SECONDS and hands the rest back; after a receiver fails to answer, the rest of
    its deliveries in the chunk wait for its first retry instead of each waiting for a timeout.
    """
    now = timezone.now()
    deliveries = _claim(delivery_ids, lease, now)
    outcomes = {}
    succeeded = []
    later = {}  # application id -> when its remaining deliveries are due again
    credentials = {}
    handed_back = []
    started = flushed = time.monotonic()
    for index, delivery in enumerate(deliveries):
        application = delivery.application
        out_of_time = index > 0 and time.monotonic() - started > CHUNK_BUDGET_SECONDS
        if application.pk in later or out_of_time:
            handed_back.append(delivery)
            continue
        if not application.callback_url:
            outcomes[delivery.pk] = _attempt_record(
                delivery, status_code=None, error="The application has no callback URL.", final=True
            )
            continue
        if application.pk not in credentials:
            credentials[application.pk] = webhook_credentials(application)
        body, headers = webhook_request(delivery, credentials=credentials[application.pk])
        attempt_started = time.monotonic()
        callback_url = application.callback_url
        status_code, retry_after, error = _post(callback_url, body, headers)
        latency_ms = int((time.monotonic() - attempt_started) * 1000)
        if not error:
            delivery.last_status_code, delivery.last_latency_ms = status_code, latency_ms
            succeeded.append(delivery)
            outcomes[delivery.pk] = DeliveryStatus.SUCCEEDED
            if len(succeeded) >= SUCCESS_FLUSH or time.monotonic() - flushed > SUCCESS_FLUSH_SECONDS:
                _successes_record(succeeded)
                succeeded, flushed = [], time.monotonic()
            continue
        if status_code == 410:
            outcomes[delivery.pk] = _attempt_record(
                delivery, status_code=410, error=error, latency_ms=latency_ms, final=True
            )
            application_callback_off(
                application=application, url=callback_url, reason="The callback answered 410 Gone."
            )
            later[application.pk] = timezone.now()
            continue
        outcomes[delivery.pk] = _attempt_record(
            delivery, status_code=status_code, error=error, latency_ms=latency_ms, retry_after=retry_after
        )
        if status_code is None or retry_after is not None:
            later[application.pk] = delivery.next_attempt_at or timezone.now()
    _successes_record(succeeded)
    if handed_back:
        _hand_back(handed_back, later)
    return outcomes


def _successes_write(deliveries, now):
    """One UPDATE for a batch of successes, per-row status code and latency in CASE expressions.

    Written by hand: QuerySet.bulk_update builds an expression tree per row and field, which cost
    more than the HTTP requests themselves.
    """
    quote = connection.ops.quote_name
    ids = [delivery.pk for delivery in deliveries]
    code_cases = " ".join("WHEN %s THEN %s" for _ in deliveries)
    latency_cases = " ".join("WHEN %s THEN %s" for _ in deliveries)
    table, pk, code, latency = (
        quote(name) for name in (Delivery._meta.db_table, "id", "last_status_code", "last_latency_ms")
    )
    assignments = ", ".join(
        [
            f"{quote('status')} = %s",
            f"{quote('next_attempt_at')} = NULL",
            f"{quote('last_error')} = ''",
            f"{quote('delivered_at')} = %s",
            f"{quote('last_attempt_at')} = %s",
            f"{code} = CASE {pk} {code_cases} END",
            f"{latency} = CASE {pk} {latency_cases} END",
        ]
    )
    placeholders = ", ".join("%s" for _ in ids)
    # Only quoted names and placeholders go into the text; every value is a parameter.
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} IN ({placeholders})"  # noqa: S608
    moment = connection.ops.adapt_datetimefield_value(now)
    params = [DeliveryStatus.SUCCEEDED.value, moment, moment]
    params += [value for d in deliveries for value in (d.pk, d.last_status_code)]
    params += [value for d in deliveries for value in (d.pk, d.last_latency_ms)]
    params += ids
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _successes_record(deliveries):
    """Writes a batch of successes; delivered_at is the time of the write (within a flush period)."""
    if not deliveries:
        return
    now = timezone.now()
    _successes_write(deliveries, now)
    healed = {delivery.application_id for delivery in deliveries if delivery.application.failing_since is not None}
    if healed:
        Application.objects.filter(pk__in=healed).update(failing_since=None)
    for delivery in deliveries:
        logger.info(
            "delivery.sent",
            extra={
                "delivery_id": delivery.pk,
                "app_id": delivery.application.app_id,
                "attempt": delivery.attempts,
                "status": delivery.last_status_code,
                "ms": delivery.last_latency_ms,
            },
        )


def _hand_back(deliveries, later):
    """Returns unattempted deliveries: their attempt is not counted; those of a receiver that just
    failed wait for its retry, the others are queued again at once."""
    now = timezone.now()
    requeue = []
    for delivery in deliveries:
        due = later.get(delivery.application_id)
        if due is None:
            requeue.append(delivery.pk)
        else:
            Delivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") - 1, next_attempt_at=due)
    if requeue:
        lease = now + ENQUEUE_LEASE
        Delivery.objects.filter(pk__in=requeue).update(attempts=F("attempts") - 1, next_attempt_at=lease)
        _deliveries_enqueue(requeue, lease)


@transaction.atomic
def _attempt_record(delivery, *, status_code, error, latency_ms=None, retry_after=None, final=False):
    now = timezone.now()
    application = delivery.application
    fields = {"last_attempt_at": now, "last_status_code": status_code, "last_latency_ms": latency_ms}
    log = {"delivery_id": delivery.pk, "app_id": application.app_id, "attempt": delivery.attempts}
    if final or delivery.attempts >= MAX_ATTEMPTS:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=error[:300], **fields
        )
        delivery.next_attempt_at = None
        outcome = DeliveryStatus.FAILED
    else:
        delay = retry_delay(delivery.attempts, retry_after)
        next_attempt_at = now + timedelta(seconds=delay)
        Delivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=next_attempt_at, last_error=error[:300], **fields
        )
        delivery.next_attempt_at = next_attempt_at
        if delay <= SHORT_WAIT_SECONDS:
            _deliveries_enqueue([delivery.pk], next_attempt_at, countdown=delay)
        outcome = "retrying"
    logger.warning("delivery.failed", extra={**log, "status": status_code, "outcome": outcome})
    _failing_note(application, now)
    return outcome


def _failing_note(application, now):
    """Remembers since when the application fails; after PAUSE_AFTER_FAILING it is paused and
    its owner emailed (once)."""
    if application.failing_since is None:
        Application.objects.filter(pk=application.pk, failing_since__isnull=True).update(failing_since=now)
        return
    if now - application.failing_since >= PAUSE_AFTER_FAILING:
        days = PAUSE_AFTER_FAILING.days
        application_pause(
            application=application, reason=f"Deliveries have failed for {days} days in a row.", notify=True
        )


def deliveries_claim_due(*, now=None, limit=DUE_BATCH) -> tuple[list[int], datetime]:
    """Leases due deliveries for queuing. skip_locked lets several beat runs or workers share the
    work without waiting on each other; the lease keeps the next run from queuing them again."""
    now = now or timezone.now()
    lease = now + ENQUEUE_LEASE
    with transaction.atomic():
        # Held rows (no next attempt) of an application that is not paused are due too: one
        # fanned out while a concurrent resume ran would otherwise wait for ever.
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True))
            .filter(status=DeliveryStatus.PENDING, application__paused_at__isnull=True)
            .order_by(F("next_attempt_at").asc(nulls_first=True), "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Delivery.objects.filter(pk__in=ids).update(next_attempt_at=lease)
    return ids, lease


def deliveries_send_due(*, limit=DUE_BATCH, max_batches=20) -> int:
    """Queues every due delivery (the beat task, every 30 s)."""
    total = 0
    for _ in range(max_batches):
        ids, lease = deliveries_claim_due(limit=limit)
        if ids:
            _deliveries_publish(ids, lease)
        total += len(ids)
        if len(ids) < limit:
            break
    if total:
        logger.info("delivery.due_queued", extra={"deliveries": total})
    return total


def lease_parse(value) -> datetime | None:
    if value in (None, ""):
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
