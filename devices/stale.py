"""The stale sweep: online devices silent for longer than their product's threshold go offline.

Beat runs it every minute (`devices.tasks.mark_stale_devices`). One set-based statement finds and
marks the devices (on PostgreSQL, `devices.sql.sweep_sql`); one `device.offline` event per device
is recorded in the same transaction (one INSERT, `offline_event_data` for both paths);
then their owners are mailed (grouped, see `devices.notifications`). A check-in afterwards sets
the device online again and records `device.online` (devices.protocol).
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Value
from django.utils import timezone

from . import notifications, outbox, sql
from .models import Device, DeviceEvent, DeviceEventType, DeviceStatus

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


def offline_event_data(*, last_seen_at) -> dict:
    """What a device.offline event says: when the device was last seen, and that it was online."""
    return {"last_seen_at": last_seen_at.isoformat(), "previous_status": DeviceStatus.ONLINE}


def _offline_events_record(rows, *, now) -> None:
    """One device.offline event for each (device id, owner id, last seen, name) of `rows`, in one
    INSERT (the names are at hand, so none is read back); nothing at all when `rows` is empty, so
    a sweep with nothing due stays one query."""
    if not rows:
        return
    outbox.events_record(
        [
            DeviceEvent(
                device_id=device_id,
                type=DeviceEventType.OFFLINE,
                data=offline_event_data(last_seen_at=last_seen_at),
                created_at=now,
            )
            for device_id, _owner_id, last_seen_at, _name in rows
        ],
        names={device_id: name for device_id, _owner_id, _last_seen_at, name in rows},
    )


def _mark_postgresql(now, *, limit) -> tuple[list[tuple], int]:
    # One UPDATE … RETURNING marks the due devices (devices.sql.sweep_sql); the events of those
    # that went offline are recorded from its rows, as the portable path records them.
    rows = sql.sweep_run(now, limit=limit)
    went_offline = [row[:4] for row in rows if row[4]]
    _offline_events_record(went_offline, now=now)
    return [row[:3] for row in went_offline], len(rows)


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
    _offline_events_record(rows, now=now)
    return [row[:3] for row in rows], len(rows)


def device_mark_offline(*, serial: str, now=None) -> bool:
    """The broker's last will for a device that dropped its MQTT connection: an online device goes
    offline now, with its `device.offline` event (as the sweep records it) and its owner's email
    (as the sweep sends it), instead of at the sweep past its threshold. False when it was not
    online (a will repeated, or one that follows a sweep). A check-in afterwards marks it online."""
    now = now or timezone.now()
    with transaction.atomic():
        # The row lock orders the will against a check-in of the same device in flight.
        row = (
            Device.objects.select_for_update()
            .filter(serial=serial, status=DeviceStatus.ONLINE)
            .values_list("id", "owner_id", "last_seen_at", "name")
            .first()
        )
        if row is None:
            return False
        Device.objects.filter(pk=row[0]).update(status=DeviceStatus.OFFLINE)
        _offline_events_record([row], now=now)
    logger.info("device.offline", extra={"device_id": str(row[0]), "reason": "will"})
    try:
        notifications.notifications_send(now=now, went_offline=[row[0]] if row[1] else [])
    except Exception:
        # Best effort, as in the sweep: the status and the event are what matter.
        logger.exception("stale.notify_failed")
    return True

