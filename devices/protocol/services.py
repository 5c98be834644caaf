"""The device side of the portal: provisioning polls, check-ins and command acknowledgements.

Check-in is the hot path (every device, every minute): on PostgreSQL it is one statement that
authenticates by token digest, updates the device, stores the Reading and the events and returns
the open commands; other databases take a portable path of a few ORM queries.
"""

import json
import logging
import random
import threading
import uuid
from datetime import timedelta
from functools import cache
from http import HTTPStatus

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, transaction
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from portal.errors import ApplicationError, ValidationError
from portal.secrets import digests_match, random_token

from .. import outbox
from ..ca import certificate_issue
from ..command_queue import commands_mark_delivered, flat_object_errors
from ..models import (
    Command,
    CommandStatus,
    Device,
    DeviceEvent,
    DeviceEventType,
    DeviceStatus,
    Product,
    Reading,
    RevokedCertificate,
)
from ..services import FACTORY_KEY_PURPOSE, certificate_revoke, factory_key_digest, token_digest

logger = logging.getLogger(__name__)

MAX_VALUES = 64
MAX_ATTEMPT_EXPONENT = 20
COMMANDS_PER_ANSWER = 20


if is_psycopg3:
    import psycopg

    class _PreparingCursor(psycopg.Cursor):
        """Server-side binding, and every statement prepared (Django turns automatic preparing off)."""

        def execute(self, query, params=None, *, prepare=True, binary=None):
            return super().execute(query, params, prepare=prepare, binary=binary)


_kept = threading.local()


def _kept_cursor(raw_connection):
    """This thread's preparing cursor on its current connection, kept between requests: a new
    cursor per statement would rebuild its adapter caches every time."""
    cursor = getattr(_kept, "cursor", None)
    if cursor is None or cursor.connection is not raw_connection or cursor.closed:
        cursor = _kept.cursor = _PreparingCursor(raw_connection)
    return cursor


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
        row = _fetchone(_poll_sql(), [serial])
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


def values_validate(values) -> dict:
    if errors := flat_object_errors(values, max_keys=MAX_VALUES, what="values"):
        raise ValidationError(errors[0], code="invalid_values", fields={"values": errors})
    return values


def _fetchone(sql, params):
    """Runs one statement and returns its first row, through a cursor PostgreSQL plans once.

    Django binds parameters client-side and never prepares, so PostgreSQL would plan the check-in
    statement (five tables, their indexes) on every call: that planning costs more than running
    it. A server-binding psycopg cursor that prepares every statement it runs keeps the plan;
    Django still translates its errors and, when it logs queries, wraps it to log them. psycopg prepares nothing on a
    connection whose prepare_threshold is None (Django's default), so the settings give it one
    (DATABASE_PREPARED_STATEMENTS). Connection poolers in transaction mode need prepared-statement
    support (PgBouncer ≥ 1.21, max_prepared_statements).

    Instead of Django's per-request health check (a `SELECT 1` round trip before the first query),
    a statement that fails on a dead persistent connection outside any transaction is retried once
    on a new connection (the statements here are single autocommit statements, safe to repeat).
    """
    db = connections[DEFAULT_DB_ALIAS]  # one thread-local lookup instead of one per attribute
    if db.vendor != "postgresql" or not is_psycopg3:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    for attempt in (1, 2):
        try:
            db.ensure_connection()
            if db.queries_logged:  # tests counting queries, DEBUG
                with db.make_debug_cursor(_PreparingCursor(db.connection)) as cursor:
                    cursor.execute(sql, params)
                    return cursor.fetchone()
            cursor = _kept_cursor(db.connection)
            with db.wrap_database_errors:
                cursor.execute(sql, params)
                return cursor.fetchone()
        except OperationalError:
            if attempt == 2 or db.in_atomic_block or db.is_usable():
                raise
            logger.warning("device.db_reconnect")
            db.close()


@cache
def _poll_sql() -> str:
    q = connection.ops.quote_name
    device, product = q(Device._meta.db_table), q(Product._meta.db_table)
    return (
        f"SELECT d.id, d.factory_key_digest, d.owner_id, d.token_used_at IS NOT NULL, p.poll_cap "  # noqa: S608
        f"FROM {device} d INNER JOIN {product} p ON p.id = d.product_id WHERE d.serial = %s"
    )


@cache
def _checkin_sql() -> str:
    q = connection.ops.quote_name
    device, reading, event, command, product = (
        q(m._meta.db_table) for m in (Device, Reading, DeviceEvent, Command, Product)
    )
    # One round trip. `old` is the row as it was before this statement (same snapshot), which
    # tells whether the device comes back online. The statement is its own transaction
    # (autocommit), so set_config(…, true) decides how this check-in alone commits: waiting for
    # the WAL flush costs more than the statement (settings.DEVICE_CHECKIN_SYNCHRONOUS_COMMIT).
    # Two check-ins of one device racing could both see it offline and both record device.online:
    # harmless, consumers are idempotent.
    # Only quoted table names and a constant are interpolated; every value is a parameter.
    # stale_check_at moves only when half the product's offline threshold has passed since it was
    # set (or the device was not online): the other check-ins change no indexed column, so
    # PostgreSQL updates the row in place without touching the table's indexes (HOT).
    return f"""
WITH dev AS (
    UPDATE {device} AS d
       SET last_seen_at = %(now)s, last_ip = %(ip)s, status = 'online', "values" = %(values)s::jsonb,
           token_used_at = COALESCE(d.token_used_at, %(now)s),
           stale_check_at = CASE
               WHEN d.status = 'online' AND d.stale_check_at >= %(now)s + p.offline_after * interval '0.5 second'
               THEN d.stale_check_at
               ELSE %(now)s + p.offline_after * interval '1 second' END
      FROM {device} AS old, {product} AS p
     WHERE d.token_digest = %(digest)s AND old.id = d.id AND p.id = d.product_id
    RETURNING d.id, d.name, p.checkin_interval, old.status AS old_status, old.token_used_at IS NULL AS first_use
), reading AS (
    INSERT INTO {reading} (device_id, recorded_at, "values")
    SELECT id, %(now)s, %(values)s::jsonb FROM dev
), events AS (
    INSERT INTO {event} (id, device_id, type, data, device_name, created_at)
    SELECT %(data_event_id)s::uuid, id, 'device.data', %(data)s::jsonb, name, %(now)s FROM dev
    UNION ALL
    SELECT %(online_event_id)s::uuid, id, 'device.online', jsonb_build_object('previous_status', old_status),
           name, %(now)s
      FROM dev WHERE old_status <> 'online'
)
SELECT dev.id, dev.old_status, dev.first_use, dev.checkin_interval,
       set_config('synchronous_commit', %(synchronous_commit)s, true),
       (SELECT json_agg(json_build_object('id', c.id, 'name', c.name, 'params', c.params, 'status', c.status,
                                          'expires_at', c.expires_at, 'sent_by_app', c.sent_by_app)
                        ORDER BY c.created_at)
          FROM (SELECT * FROM {command}
                 WHERE device_id = dev.id AND status IN ('pending', 'delivered') AND expires_at > %(now)s
                 ORDER BY created_at LIMIT {COMMANDS_PER_ANSWER}) AS c)
  FROM dev
"""  # noqa: S608


def _checkin_postgresql(*, digest, values, ip, now):
    # The event ids are chosen here, so a retried statement that had in fact run fails on the
    # primary key instead of recording the check-in twice.
    row = _fetchone(
        _checkin_sql(),
        {
            "now": now,
            "ip": ip,
            "values": json.dumps(values),
            "digest": digest,
            "data_event_id": uuid.uuid4(),
            "online_event_id": uuid.uuid4(),
            "data": json.dumps({"values": values, "recorded_at": now.isoformat()}),
            "synchronous_commit": "on" if settings.DEVICE_CHECKIN_SYNCHRONOUS_COMMIT else "off",
        },
    )
    if row is None:
        raise Unauthenticated()
    device_id, old_status, first_use, interval, _synchronous_commit, open_commands = row
    # In autocommit this runs at once; inside a test's transaction, at its commit.
    transaction.on_commit(outbox.relay_schedule, robust=True)
    commands = [
        Command(
            id=c["id"],
            device_id=device_id,
            name=c["name"],
            params=c["params"],
            status=c["status"],
            expires_at=parse_datetime(c["expires_at"]),
            sent_by_app=c["sent_by_app"],
        )
        for c in open_commands or ()
    ]
    return device_id, old_status, first_use, interval, commands


def stale_check_next(*, old_status, stale_check_at, now, offline_after):
    """When the stale sweep should look at a device that checks in now (as the PostgreSQL
    statement computes it): kept while at least half the threshold is left, else a threshold on."""
    if old_status == DeviceStatus.ONLINE and stale_check_at >= now + timedelta(seconds=offline_after / 2):
        return stale_check_at
    return now + timedelta(seconds=offline_after)


def _checkin_portable(*, digest, values, ip, now):
    with transaction.atomic():
        # select_for_update orders concurrent check-ins of one device (a no-op on SQLite, whose
        # writers are serialised anyway).
        row = (
            Device.objects.select_for_update()
            .filter(token_digest=digest)
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
            last_ip=ip,
            status=DeviceStatus.ONLINE,
            values=values,
            token_used_at=Coalesce("token_used_at", now),
            stale_check_at=stale_check_next(
                old_status=old_status, stale_check_at=stale_check_at, now=now, offline_after=offline_after
            ),
        )
        Reading.objects.create(device_id=device_id, recorded_at=now, values=values)
        events = [
            DeviceEvent(
                device_id=device_id,
                type=DeviceEventType.DATA,
                data={"values": values, "recorded_at": now.isoformat()},
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
        commands = list(
            Command.objects.filter(
                device_id=device_id,
                status__in=(CommandStatus.PENDING, CommandStatus.DELIVERED),
                expires_at__gt=now,
            )
            .order_by("created_at")
            .only("id", "device_id", "name", "params", "status", "expires_at", "sent_by_app")[:COMMANDS_PER_ANSWER]
        )
    return device_id, old_status, used_at is None, interval, commands


def checkin_path():
    """The check-in implementation for this database: the one statement on PostgreSQL, the
    portable ORM path elsewhere. Both take (digest, values, ip, now) and return (device id, old
    status, first use, check-in interval, open commands); a test runs both on PostgreSQL."""
    return _checkin_postgresql if connection.vendor == "postgresql" else _checkin_portable


def device_checkin(*, token: str, values, ip: str | None) -> dict:
    """A device reports its values: status online, last seen now, a Reading stored, `device.data`
    recorded (and `device.online` when it was not online), the token marked used; answers the
    open commands (marking pending ones delivered) and when to check in next.

    Invalid values raise ValidationError before anything is written.
    """
    values_validate(values)
    now = timezone.now()
    digest = token_digest(token)
    checkin = checkin_path()
    device_id, old_status, first_use, interval, commands = checkin(digest=digest, values=values, ip=ip, now=now)
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


def device_commands_fetch(*, device: Device) -> list[dict]:
    """The device's open commands, oldest first; pending ones become delivered."""
    with transaction.atomic():
        commands = list(
            Command.objects.filter(
                device_id=device.pk,
                status__in=(CommandStatus.PENDING, CommandStatus.DELIVERED),
                expires_at__gt=timezone.now(),
            )
            .order_by("created_at")
            .only("id", "device_id", "name", "params", "status", "expires_at", "sent_by_app")[:COMMANDS_PER_ANSWER]
        )
        commands_mark_delivered(device_id=device.pk, commands=commands)
    return [command_for_device(c) for c in commands]
