"""The stale sweep: online devices silent for longer than their product's threshold go offline.

Beat runs it every minute (`devices.tasks.mark_stale_devices`). One set-based statement finds and
marks the devices; one `device.offline` event per device is recorded in the same transaction;
then their owners are mailed (grouped, see `devices.notifications`). A check-in afterwards sets
the device online again and records `device.online` (devices.protocol).
"""

import functools
import logging
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Value
from django.utils import timezone

from . import notifications, outbox
from .models import Device, DeviceEvent, DeviceEventType, DeviceStatus, Product

logger = logging.getLogger(__name__)

SWEEP_LOCK_KEY = "devices:stale-sweep:lock"
LAST_SWEEP_KEY = "devices:stale-sweep:last"
# A run cannot outlive the task's hard time limit, so a lock left by a killed worker frees itself
# then, and a live run never loses its lock to a timeout.
SWEEP_LOCK_SECONDS = settings.CELERY_TASK_TIME_LIMIT
# Devices marked per statement (and events written per transaction).
SWEEP_BATCH = 10_000
_IN_CHUNK = 900  # ids per IN (...) on SQLite, under its bound-parameter limit


def last_sweep_at() -> datetime | None:
    """When the last sweep finished (None if none is known): the health endpoint's beat check."""
    stamp = cache.get(LAST_SWEEP_KEY)
    return datetime.fromtimestamp(stamp, tz=UTC) if stamp is not None else None


def devices_mark_stale(*, now=None) -> int:
    """Marks offline every online device whose last check-in is older than its product's
    `offline_after`, records one `device.offline` event each, mails the owners who asked, and
    remembers when it ran. Returns how many devices went offline.

    Runs never overlap: a run that finds the lock taken does nothing and returns 0. With nothing
    due, the sweep is one query on the partial index `device_online_stale_check` (plus the
    notifier's one query for held-back emails).
    """
    now = now or timezone.now()
    token = uuid.uuid4().hex
    # cache.add is atomic on Redis (SET NX): exactly one of two overlapping runs gets the lock.
    if not cache.add(SWEEP_LOCK_KEY, token, timeout=SWEEP_LOCK_SECONDS):
        logger.info("stale.sweep_skipped", extra={"reason": "another sweep is running"})
        return 0
    try:
        went_offline = _devices_mark_offline(now)
        if went_offline:
            logger.info("stale.devices_offline", extra={"devices": len(went_offline)})
        try:
            notifications.notifications_send(
                now=now, went_offline=[device_id for device_id, owner_id, _ in went_offline if owner_id]
            )
        except Exception:
            # Emails are best effort: the sweep itself (statuses, events, the beat heartbeat)
            # must go on. Logged with the traceback, not hidden.
            logger.exception("stale.notify_failed")
        cache.set(LAST_SWEEP_KEY, now.timestamp(), timeout=None)
    finally:
        if cache.get(SWEEP_LOCK_KEY) == token:
            cache.delete(SWEEP_LOCK_KEY)
    return len(went_offline)


def _devices_mark_offline(now) -> list[tuple]:
    """Marks the stale devices in batches, each with its events in one transaction; returns
    (device id, owner id, last seen) of each device that went offline.

    Batches bound the statement, its locks and the events written at once when a whole fleet goes
    quiet together (a network outage); a normal sweep is a single batch.
    """
    mark = mark_path()
    marked = []
    while True:
        # savepoint=False: no SAVEPOINT round trips when called inside a transaction (tests, admin).
        with transaction.atomic(savepoint=False):
            rows, looked_at = mark(now, limit=SWEEP_BATCH)
        marked.extend(rows)
        if looked_at < SWEEP_BATCH:
            return marked


def mark_path():
    """The sweep's marking step for this database: the one statement on PostgreSQL, the portable
    ORM path elsewhere. Both take (now, limit) and return ((device id, owner id, last seen) of the
    devices that went offline, how many devices were looked at); a test runs both on PostgreSQL."""
    return _mark_postgresql if connection.vendor == "postgresql" else _mark_sqlite


@functools.cache
def _sweep_sql() -> str:
    q = connection.ops.quote_name
    device, product, event = (q(model._meta.db_table) for model in (Device, Product, DeviceEvent))
    # The due devices come from the partial index device_online_stale_check: with nothing due
    # the scan ends at once, and otherwise it reads only the due devices, whatever the fleet's
    # size. A due device is marked offline when its product's threshold has passed; one that
    # checked in meanwhile is only given its next look (the moment it would turn stale).
    # FOR UPDATE re-reads a row that a check-in changed after this statement began, and the SET
    # expressions see that version; SKIP LOCKED passes over a device checking in right now.
    # `= ANY(ARRAY(…))` makes the update itself primary-key lookups; a join with the subquery
    # lets the planner hash-join against a scan of the whole table.
    # Each device that went offline gets its device.offline event in the same statement, its
    # last_seen_at written as Python's isoformat() writes it (the portable path's, and every other
    # event's): six fraction digits or none, where PostgreSQL's JSON would drop trailing zeros.
    # Only quoted table names and constants are interpolated; the values are parameters.
    return f"""
WITH looked_at AS (
    UPDATE {device} AS d
       SET status = CASE WHEN d.last_seen_at < %(now)s - p.offline_after * interval '1 second'
                         THEN 'offline' ELSE d.status END,
           stale_check_at = CASE WHEN d.last_seen_at < %(now)s - p.offline_after * interval '1 second'
                                 THEN d.stale_check_at
                                 ELSE COALESCE(d.last_seen_at, %(now)s) + p.offline_after * interval '1 second' END
      FROM {product} AS p
     WHERE p.id = d.product_id AND d.status = 'online' AND d.id = ANY(ARRAY(
            SELECT s.id
              FROM {device} AS s
             WHERE s.status = 'online' AND s.stale_check_at <= %(now)s
             LIMIT %(limit)s
               FOR UPDATE OF s SKIP LOCKED))
    RETURNING d.id, d.owner_id, d.last_seen_at, d.name, d.status = 'offline' AS went_offline
), events AS (
    INSERT INTO {event} (id, device_id, type, data, device_name, created_at)
    SELECT gen_random_uuid(), id, 'device.offline',
           jsonb_build_object(
               'last_seen_at', to_char(last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
                               || CASE to_char(last_seen_at, 'US') WHEN '000000' THEN ''
                                  ELSE to_char(last_seen_at, '.US') END || '+00:00',
               'previous_status', 'online'), name, %(now)s
      FROM looked_at WHERE went_offline
)
SELECT id, owner_id, last_seen_at, went_offline FROM looked_at
"""  # noqa: S608


def _mark_postgresql(now, *, limit) -> tuple[list[tuple], int]:
    with connection.cursor() as cursor:
        cursor.execute(_sweep_sql(), {"now": now, "limit": limit})
        rows = cursor.fetchall()
    went_offline = [row[:3] for row in rows if row[3]]
    if went_offline:  # the statement wrote their events, so the relay is scheduled as events_record would
        transaction.on_commit(outbox.relay_schedule, robust=True)
    return went_offline, len(rows)


def _mark_sqlite(now, *, limit) -> tuple[list[tuple], int]:
    # The embedded default, for small fleets: the stale devices by last_seen_at directly, without
    # the index PostgreSQL's sweep reads. SQLite serialises writers (the transaction began
    # IMMEDIATE), so reading the stale rows and then updating them by primary key cannot race a
    # check-in. Durations are microseconds there, hence the factor; on PostgreSQL (where a test
    # compares this path with the statement) they are intervals.
    second = Value(timedelta(seconds=1)) if connection.features.has_native_duration_field else 1_000_000
    threshold = ExpressionWrapper(
        Value(now) - ExpressionWrapper(F("product__offline_after") * second, output_field=DurationField()),
        output_field=DateTimeField(),
    )
    rows = list(
        Device.objects.filter(status=DeviceStatus.ONLINE, last_seen_at__lt=threshold)
        .order_by()
        .values_list("id", "owner_id", "last_seen_at", "name")[:limit]
    )
    for start in range(0, len(rows), _IN_CHUNK):
        ids = [row[0] for row in rows[start : start + _IN_CHUNK]]
        Device.objects.filter(pk__in=ids).update(status=DeviceStatus.OFFLINE)
    outbox.events_record(
        [
            DeviceEvent(
                device_id=device_id,
                type=DeviceEventType.OFFLINE,
                data={"last_seen_at": last_seen_at.isoformat(), "previous_status": DeviceStatus.ONLINE},
                created_at=now,
            )
            for device_id, _, last_seen_at, _name in rows
        ],
        names={row[0]: row[3] for row in rows},
    )
    return [row[:3] for row in rows], len(rows)
