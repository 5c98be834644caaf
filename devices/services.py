"""Writes on devices. Every change that matters happens here, in a transaction."""

import logging

from django.db import transaction

from portal.errors import ValidationError
from portal.secrets import keyed_digest

from .models import LOOK_AT_ONCE, Device, DeviceStatus

logger = logging.getLogger(__name__)

FACTORY_KEY_PURPOSE = "factory-key"
PIN_PURPOSE = "pin"
TOKEN_PURPOSE = "device-token"


def factory_key_digest(key: str) -> str:
    return keyed_digest(key, purpose=FACTORY_KEY_PURPOSE)


def pin_digest(pin: str) -> str:
    return keyed_digest(pin.strip(), purpose=PIN_PURPOSE)


def token_digest(token: str) -> str:
    return keyed_digest(token, purpose=TOKEN_PURPOSE)


@transaction.atomic
def device_credentials_revoke(*, device: Device) -> None:
    """Voids the device's token and certificate: old credentials get 401 and the next
    provisioning poll starts over (unclaimed, or fresh credentials for a new owner)."""
    Device.objects.filter(pk=device.pk).update(
        token_digest=None, token_issued_at=None, token_used_at=None, certificate_pem="", certificate_serial=""
    )
    device.token_digest = None
    device.token_issued_at = device.token_used_at = None
    device.certificate_pem = device.certificate_serial = ""
    logger.info("device.credentials_revoked", extra={"device_id": str(device.pk)})


def stale_checks_reschedule(*, product) -> int:
    """After the product's offline threshold changed: its online devices are looked at by the next
    stale sweep, which gives each its next look under the new threshold. Returns how many."""
    return Device.objects.filter(product=product, status=DeviceStatus.ONLINE).update(stale_check_at=LOOK_AT_ONCE)


@transaction.atomic
def device_rename(*, device: Device, name: str) -> Device:
    """Sets the owner's nickname for the device; an empty name shows the serial instead."""
    name = " ".join((name or "").split())
    limit = Device._meta.get_field("name").max_length
    if len(name) > limit:
        message = f"A name has at most {limit} characters."
        raise ValidationError(message, fields={"name": [message]})
    device.name = name
    device.save(update_fields=["name"])
    return device
