"""The device side of the portal: provisioning polls, check-ins and command acknowledgements.

Check-in is the hot path (every device, every minute): on PostgreSQL it is one statement that
authenticates by token digest, updates the device, stores the Reading and the events and returns
the open commands; other databases take a portable path of a few ORM queries. The statements and
the cursor that runs them are in `devices.sql`; the rules are here.
"""

import logging
import random
from functools import cache
from http import HTTPStatus

from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.errors import ApplicationError, ValidationError
from portal.secrets import digests_match, random_token

from .. import outbox, sql
from ..ca import certificate_issue
from ..command_queue import commands_mark_delivered, commands_open, flat_object_errors
from ..models import Command, Device, DeviceEvent, DeviceEventType, DeviceStatus, Reading, RevokedCertificate
from ..services import FACTORY_KEY_PURPOSE, certificate_revoke, factory_key_digest, token_digest

logger = logging.getLogger(__name__)

MAX_VALUES = 64
MAX_ATTEMPT_EXPONENT = 20


class Unauthenticated(ApplicationError):
    code = "unauthenticated"
    status = HTTPStatus.UNAUTHORIZED
    message = "Unknown device or wrong credentials."


@cache
def _dummy_factory_key_digest() -> str:
    # Compared against when the serial is unknown, so both failures cost the same time.
    return factory_key_digest("no device has this key")


def retry_after_seconds(*, attempt: int, cap: int) -> int:
    """Seconds an unclaimed device waits before its next poll: base·2^attempt up to the product's
    cap, ±20 % so devices powered on together drift apart instead of polling in lockstep."""
    base = settings.DEVICE_POLL_BASE_SECONDS
    ideal = min(base * 2 ** min(max(attempt, 0), MAX_ATTEMPT_EXPONENT), cap)
    return max(1, round(ideal * random.uniform(0.8, 1.2)))


def device_provision(
    *, serial: str, factory_key: str, attempt: int = 0, csr_pem: str | None = None, ip: str | None = None
) -> dict:
    """Answers a provisioning poll authenticated by serial and factory key.

    - not owned: `unclaimed` with the time to wait;
    - owned, credentials not used yet: `claimed` with a fresh token (voiding the previous unused
      one, whose certificate goes on the revocation list) and, when a CSR was sent, a certificate
      signed by the product's CA; the time and `ip` of this poll are kept for the owner to see;
    - owned and the token already used: `provisioned`, without secrets.
    Raises Unauthenticated (same answer for an unknown serial and a wrong key) or CsrError.
    """
    for _ in range(3):
        # The hot path (a factory of unclaimed devices polling) is this one prepared SELECT.
        row = sql.poll_row(serial)
        stored = row[1] if row else _dummy_factory_key_digest()
        if not digests_match(factory_key, stored, purpose=FACTORY_KEY_PURPOSE) or row is None:
            raise Unauthenticated()
        device_id, _digest, owner_id, token_used, poll_cap = row
        if owner_id is None:
            return {"state": "unclaimed", "retry_after": retry_after_seconds(attempt=attempt, cap=poll_cap)}
        if token_used:
            return {"state": "provisioned"}
        device = Device.objects.select_related("product").get(pk=device_id)
        certificate = certificate_serial = ""
        if csr_pem is not None:
            certificate, certificate_serial = certificate_issue(product=device.product, serial=serial, csr_pem=csr_pem)
        token = random_token(32)
        # Conditional (the row locked): a check-in with the previous token, or a reset, may have
        # landed meanwhile; then this poll must not hand out credentials, and is answered afresh.
        with transaction.atomic():
            replaced = (
                Device.objects.select_for_update()
                .filter(pk=device.pk, owner_id=owner_id, token_used_at__isnull=True)
                .values_list("certificate_serial", flat=True)
                .first()
            )
            issued = replaced is not None and Device.objects.filter(pk=device.pk).update(
                token_digest=token_digest(token),
                token_issued_at=timezone.now(),
                token_issued_ip=ip,
                certificate_pem=certificate,
                certificate_serial=certificate_serial,
            )
            if issued:
                certificate_revoke(
                    product_id=device.product_id,
                    serial_number=replaced,
                    reason=RevokedCertificate.Reason.SUPERSEDED,
                    device_id=device.pk,
                )
        if issued:
            logger.info(
                "device.credentials_issued",
                extra={"device_id": str(device.pk), "certificate_serial": certificate_serial or None},
            )
            return {
                "state": "claimed",
                "credentials": {
                    "token": token,
                    "certificate": certificate or None,
                    "ca_chain": device.product.ca_certificate_pem if certificate else None,
                },
            }
    raise ApplicationError("The device changed while provisioning; poll again.", code="retry", status=409)


def checkin_values(body: dict):
    """The values of a check-in's body (HTTP or MQTT), which must name them."""
    if "values" not in body:
        raise ValidationError("values is required.", code="invalid_values", fields={"values": ["Required."]})
    return body["values"]


def values_validate(values) -> dict:
    if errors := flat_object_errors(values, max_keys=MAX_VALUES, what="values"):
        raise ValidationError(errors[0], code="invalid_values", fields={"values": errors})
    return values


def checkin_event_data(*, values, now) -> dict:
    """What a check-in's device.data event says: the values and when they were recorded."""
    return {"values": values, "recorded_at": now.isoformat()}


def _checkin_postgresql(*, values, ip, now, digest=None, serial=None):
    checked_in = sql.checkin_run(
        digest=digest,
        serial=serial,
        values=values,
        ip=ip,
        now=now,
        data=checkin_event_data(values=values, now=now),
        synchronous_commit=settings.DEVICE_CHECKIN_SYNCHRONOUS_COMMIT,
    )
    if checked_in is None:
        raise Unauthenticated()
    # The statement recorded the events: the relay is scheduled, and the device's live page told,
    # as events_record would. In autocommit this runs at once; inside a test's transaction, at its commit.
    transaction.on_commit(outbox.relay_schedule, robust=True)
    outbox.live_changed_on_commit([checked_in[0]])
    return checked_in


def _checkin_portable(*, values, ip, now, digest=None, serial=None):
    # The device by its token's digest, or by certificate as devices.sql.CHECKIN_BY says (then its
    # address is not known, and last_ip stays).
    if serial is None:
        device, address = Device.objects.filter(token_digest=digest), {"last_ip": ip}
    else:
        device, address = Device.objects.filter(serial=serial).exclude(certificate_serial=""), {}
    with transaction.atomic():
        # select_for_update orders concurrent check-ins of one device (a no-op on SQLite, whose
        # writers are serialised anyway).
        row = (
            device.select_for_update()
            .values_list(
                "id",
                "status",
                "token_used_at",
                "stale_check_at",
                "product__checkin_interval",
                "product__offline_after",
                "name",
            )
            .first()
        )
        if row is None:
            raise Unauthenticated()
        device_id, old_status, used_at, stale_check_at, interval, offline_after, name = row
        Device.objects.filter(pk=device_id).update(
            last_seen_at=now,
            **address,
            status=DeviceStatus.ONLINE,
            values=values,
            token_used_at=Coalesce("token_used_at", now),
            stale_check_at=sql.stale_check_next(
                old_status=old_status, stale_check_at=stale_check_at, now=now, offline_after=offline_after
            ),
        )
        Reading.objects.create(device_id=device_id, recorded_at=now, values=values)
        events = [
            DeviceEvent(
                device_id=device_id,
                type=DeviceEventType.DATA,
                data=checkin_event_data(values=values, now=now),
                created_at=now,
            )
        ]
        if old_status != DeviceStatus.ONLINE:
            events.append(
                DeviceEvent(
                    device_id=device_id,
                    type=DeviceEventType.ONLINE,
                    data={"previous_status": old_status},
                    created_at=now,
                )
            )
        outbox.events_record(events, names={device_id: name})
        commands = list(commands_open(device_id=device_id, now=now))
    return device_id, old_status, used_at is None, interval, commands


def checkin_path():
    """The check-in implementation for this database: the one statement on PostgreSQL, the
    portable ORM path elsewhere. Both take (values, ip, now, and the device's token `digest` or, by
    certificate, its `serial`) and return (device id, old status, first use, check-in interval,
    open commands); a test runs both on PostgreSQL."""
    return _checkin_postgresql if connection.vendor == "postgresql" else _checkin_portable


def device_checkin(*, token: str, values, ip: str | None) -> dict:
    """A device reports its values: status online, last seen now, a Reading stored, `device.data`
    recorded (and `device.online` when it was not online), the token marked used; answers the
    open commands (marking pending ones delivered) and when to check in next.

    Invalid values raise ValidationError before anything is written.
    """
    return _checkin(values=values, ip=ip, digest=token_digest(token))


def device_checkin_by_certificate(*, serial: str, values) -> dict:
    """`device_checkin` for a device the MQTT broker authenticated by its certificate (the CN is
    its serial): the same rules, writes and answer. Refused (Unauthenticated) when the device has
    no certificate in force, as after a reset or a revocation."""
    return _checkin(values=values, ip=None, serial=serial)


def devices_checkin_by_certificate(*, checkins) -> list[dict | ApplicationError]:
    """Many `device_checkin_by_certificate` at once ((serial, values) pairs, a bridge's batch of
    MQTT messages): the same rules and writes, each check-in's answer or error in order. On
    PostgreSQL the devices of a batch check in in one statement (devices.sql.checkin_batch_sql;
    a device named twice gets a statement per repeat, in order); elsewhere one after another."""
    outcomes: list = [None] * len(checkins)
    valid = []
    for index, (_serial, values) in enumerate(checkins):
        try:
            values_validate(values)
        except ValidationError as exc:
            outcomes[index] = exc
        else:
            valid.append(index)
    if connection.vendor != "postgresql":
        for index in valid:
            try:
                outcomes[index] = device_checkin_by_certificate(serial=checkins[index][0], values=checkins[index][1])
            except ApplicationError as exc:
                outcomes[index] = exc
        return outcomes
    while valid:
        batch, seen, later = [], set(), []
        for index in valid:
            (later if checkins[index][0] in seen else batch).append(index)
            seen.add(checkins[index][0])
        # Rows locked in serial order: two bridges' batches cannot deadlock on each other's devices.
        batch.sort(key=lambda i: checkins[i][0])
        now = timezone.now()
        checked_in = sql.checkin_batch_run(
            checkins=[checkins[i] for i in batch],
            now=now,
            data=[checkin_event_data(values=checkins[i][1], now=now) for i in batch],
            synchronous_commit=settings.DEVICE_CHECKIN_SYNCHRONOUS_COMMIT,
        )
        transaction.on_commit(outbox.relay_schedule, robust=True)
        for index in batch:
            row = checked_in.get(checkins[index][0])
            outcomes[index] = Unauthenticated() if row is None else _checked_in(*row)
        valid = later
    return outcomes


def _checkin(*, values, ip, digest=None, serial=None) -> dict:
    values_validate(values)
    now = timezone.now()
    checkin = checkin_path()
    return _checked_in(*checkin(digest=digest, serial=serial, values=values, ip=ip, now=now))


def _checked_in(device_id, old_status, first_use, interval, commands) -> dict:
    """What follows every check-in, whichever path wrote it: the logs, the commands handed over."""
    if first_use:
        logger.info("device.provisioned", extra={"device_id": str(device_id)})
    if old_status != DeviceStatus.ONLINE:
        logger.info("device.online", extra={"device_id": str(device_id), "previous_status": old_status})
    if commands:
        with transaction.atomic():
            commands_mark_delivered(device_id=device_id, commands=commands)
    return {"commands": [command_for_device(c) for c in commands], "next_checkin": interval}


def command_for_device(command: Command) -> dict:
    return {
        "id": str(command.id),
        "name": command.name,
        "params": command.params,
        "expires_at": command.expires_at.isoformat() if command.expires_at else None,
    }


def device_for_token(*, token: str) -> Device:
    """The device a bearer token belongs to (Unauthenticated otherwise); marks the token used,
    as its first use ends the provisioning hand-over."""
    device = Device.objects.only("id", "token_used_at").filter(token_digest=token_digest(token)).first()
    if device is None:
        raise Unauthenticated()
    if device.token_used_at is None:
        marked = Device.objects.filter(pk=device.pk, token_used_at__isnull=True).update(token_used_at=timezone.now())
        if marked:
            logger.info("device.provisioned", extra={"device_id": str(device.pk)})
    return device


def device_for_certificate(*, serial: str) -> Device:
    """The device an MQTT client's certificate names (its CN, the serial), while it has a
    certificate in force (Unauthenticated otherwise): the check-in's rule, devices.sql.CHECKIN_BY."""
    device = Device.objects.only("id", "serial").filter(serial=serial).exclude(certificate_serial="").first()
    if device is None:
        raise Unauthenticated()
    return device


def device_commands_fetch(*, device: Device) -> list[dict]:
    """The device's open commands, oldest first; pending ones become delivered."""
    with transaction.atomic():
        commands = list(commands_open(device_id=device.pk, now=timezone.now()))
        commands_mark_delivered(device_id=device.pk, commands=commands)
    return [command_for_device(c) for c in commands]
