"""The request a delivery makes: its JSON payload, its Standard Webhooks signatures and its headers
(Authorization, User-Agent), built for each attempt."""

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from portal.secrets import decrypt

from ..models import CallbackAuthStyle
from .applications import SIGNING_SECRET_PREFIX, application_signing_secrets


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
