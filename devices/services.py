"""Writes on devices. Every change that matters happens here, in a transaction."""

import logging

from django.db import transaction

from portal.errors import ValidationError
from portal.secrets import keyed_digest

from .models import LOOK_AT_ONCE, Device, DeviceStatus, RevokedCertificate

logger = logging.getLogger(__name__)

FACTORY_KEY_PURPOSE = "factory-key"
PIN_PURPOSE = "pin"
TOKEN_PURPOSE = "device-token"
# What a PIN may be, wherever one is set: the owner's PIN settings and the maker's import.
PIN_MIN_LENGTH = 4
PIN_MAX_LENGTH = 32
PIN_RULE = f"{PIN_MIN_LENGTH} to {PIN_MAX_LENGTH} letters and digits"


def factory_key_digest(key: str) -> str:
    return keyed_digest(key, purpose=FACTORY_KEY_PURPOSE)


def pin_validate(pin: str) -> str:
    """The PIN with surrounding spaces removed, if it keeps the rule (PIN_RULE: ASCII letters and
    digits only); else ValidationError on `pin`."""
    pin = (pin or "").strip()
    if not (PIN_MIN_LENGTH <= len(pin) <= PIN_MAX_LENGTH and pin.isascii() and pin.isalnum()):
        message = f"A PIN is {PIN_RULE}."
        raise ValidationError(message, fields={"pin": [message]})
    return pin


def pin_digest(pin: str) -> str:
    return keyed_digest(pin.strip(), purpose=PIN_PURPOSE)


def token_digest(token: str) -> str:
    return keyed_digest(token, purpose=TOKEN_PURPOSE)


_NO_CREDENTIALS = {
    "token_digest": None,
    "token_issued_at": None,
    "token_issued_ip": None,
    "token_used_at": None,
    "certificate_pem": "",
    "certificate_serial": "",
}


def certificate_revoke(*, product_id, serial_number: str, reason: str, device_id=None) -> None:
    """Puts a voided certificate's serial on its product CA's revocation list (once), naming the
    device it was issued to (whose live MQTT session the bridge then ends, devices.mqtt.revocation)."""
    if serial_number:
        RevokedCertificate.objects.get_or_create(
            product_id=product_id, serial_number=serial_number, defaults={"reason": reason, "device_id": device_id}
        )


def _device_reset(device: Device, fields: dict, *, reason: str) -> None:
    # The row lock orders this against a provisioning poll issuing a certificate at the same time,
    # so the serial read here is the one being voided.
    current = Device.objects.select_for_update().filter(pk=device.pk).values_list("product_id", "certificate_serial")
    for product_id, serial_number in current:
        certificate_revoke(product_id=product_id, serial_number=serial_number, reason=reason, device_id=device.pk)
    Device.objects.filter(pk=device.pk).update(**fields)
    for name, value in fields.items():
        setattr(device, name, value)


@transaction.atomic
def device_credentials_revoke(*, device: Device, actor=None) -> None:
    """Voids the device's token and certificate (its serial goes on the product CA's revocation
    list): old credentials get 401 and the next provisioning poll starts over (fresh credentials
    while the device is owned, unclaimed otherwise)."""
    _device_reset(device, _NO_CREDENTIALS, reason=RevokedCertificate.Reason.REVOKED)
    logger.info(
        "device.credentials_revoked", extra={"device_id": str(device.pk), "actor_id": getattr(actor, "pk", None)}
    )


@transaction.atomic
def device_owner_forget(*, device: Device) -> None:
    """What a change of owner wipes from the device: its credentials (as device_credentials_revoke),
    its latest values and last IP, and the previous owner's nickname for it. Its readings stay, but
    owners and applications read only those recorded since they got the device."""
    _device_reset(
        device,
        {**_NO_CREDENTIALS, "values": {}, "last_ip": None, "name": ""},
        reason=RevokedCertificate.Reason.OWNER_CHANGED,
    )
    logger.info("device.owner_forgotten", extra={"device_id": str(device.pk)})


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
