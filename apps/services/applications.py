"""Applications: their Secret and signing secrets (generation, validation, rotation and the
overlap of a replaced signing secret), create, update and delete, pause and resume, and the
callback turned off after a 410."""

import base64
import logging
import os
import re
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from devices.models import DeviceEvent, DeviceEventType
from devices.outbox import events_record
from portal.errors import ValidationError
from portal.secrets import decrypt, encrypt, keyed_digest, random_crockford, random_token

from .. import ssrf
from ..models import Application, AppLink, CallbackAuthStyle, Delivery, DeliveryStatus
from .fanout import DUE_BATCH, ENQUEUE_LEASE, _deliveries_enqueue

logger = logging.getLogger(__name__)

# The integrator API authenticates `Basic AppId:Secret` against the digest made with this purpose.
APP_SECRET_PURPOSE = "app-secret"

SECRET_BYTES = 32
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 200
SIGNING_SECRET_PREFIX = "whsec_"
# How long a replaced signing secret keeps signing beside the new one (docs/integrators.md).
SIGNING_SECRET_OVERLAP = timedelta(hours=24)
# An HTTP token (RFC 9110): what may stand before the secret in `Authorization: <prefix> <secret>`.
_TOKEN_PREFIX_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]*$")
_SECRET_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces: it travels in a header


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
    if notify:
        _owner_email(application, "paused", reason)
    return True


def _owner_email(application, template, reason):
    """Tells the application's owner (an OEM's managed application has none) after commit."""
    owner = application.owner
    if owner is None or not owner.email:
        return
    context = {
        "application": application,
        "reason": reason,
        "url": settings.PORTAL_BASE_URL + reverse("apps:detail", args=[application.app_id]),
        "portal_name": settings.PORTAL_NAME,
    }
    subject = render_to_string(f"apps/emails/{template}_subject.txt", context).strip()
    body = render_to_string(f"apps/emails/{template}.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, None, [owner.email]), robust=True)


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
    _owner_email(application, "callback_off", reason)
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
