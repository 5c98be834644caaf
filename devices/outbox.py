"""The outbox: DeviceEvents written with the change they record, relayed to consumers after commit.

Higher apps register a consumer (a function taking a list of DeviceEvents) in their AppConfig.ready;
devices never imports them. A consumer runs inside the relay's transaction: it should only write
rows (e.g. Delivery rows) and leave network work to tasks it schedules with on_commit.
Consumers must be idempotent: an event may be handed over more than once (another consumer failed
on the same batch, or a crash between a consumer's work and marking the event handled).
"""

import logging
import time

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from portal import live

from .models import Device, DeviceEvent

logger = logging.getLogger(__name__)

_consumers = {}

# At most one relay task is published per window across all processes; it runs when the window
# closes, so it also relays every event recorded while later publishes were skipped.
RELAY_DEBOUNCE_SECONDS = 1
_RELAY_DEBOUNCE_KEY = "outbox:relay-scheduled"
_last_relay_scheduled = float("-inf")
RELAY_PAUSE_AFTER_BROKER_ERROR = 30


def register_consumer(name, func):
    _consumers[name] = func


def relay_schedule():
    """Publishes the relay task unless one is already due within the debounce window.

    The process-local check spares a cache round trip on busy web workers; the cache `add`
    (atomic) decides between processes. Call it through on_commit(..., robust=True): a broker or
    cache outage must never fail the change; the beat task relays what is left.
    """
    global _last_relay_scheduled
    now = time.monotonic()
    if now - _last_relay_scheduled < RELAY_DEBOUNCE_SECONDS:
        return
    _last_relay_scheduled = now
    if not cache.add(_RELAY_DEBOUNCE_KEY, 1, timeout=RELAY_DEBOUNCE_SECONDS):
        return
    from .tasks import relay_outbox as relay_outbox_task

    try:
        relay_outbox_task.apply_async(countdown=RELAY_DEBOUNCE_SECONDS)
    except OperationalError:
        # The broker is down: each failed publish costs its connect timeout, so stop trying for a
        # while in this process instead of slowing every request; beat relays once it is back.
        _last_relay_scheduled = now + RELAY_PAUSE_AFTER_BROKER_ERROR
        logger.error("outbox.relay_publish_failed", exc_info=True)


def relay_now():
    """Publishes the relay task to run at once, past the debounce: for events someone waits for
    (a command for a device on MQTT, pushed by a consumer). Through on_commit(..., robust=True),
    as relay_schedule; beat relays what a broker outage left."""
    from .tasks import relay_outbox as relay_outbox_task

    try:
        relay_outbox_task.apply_async()
    except OperationalError:
        logger.error("outbox.relay_publish_failed", exc_info=True)


def events_record(events, *, names=None):
    """Stores DeviceEvents (unsaved instances) with the device's name of the moment, and schedules
    the relay once the transaction commits. `names` ({device id: name}) spares reading the names
    of devices the caller has not loaded but has read."""
    now = timezone.now()
    names = dict(names or {})
    unloaded = {e.device_id for e in events if not DeviceEvent.device.is_cached(e) and e.device_id not in names}
    if unloaded:
        names.update(Device.objects.filter(pk__in=unloaded).values_list("pk", "name"))
    for event in events:
        event.created_at = event.created_at or now
        event.device_name = event.device.name if DeviceEvent.device.is_cached(event) else names.get(event.device_id, "")
    DeviceEvent.objects.bulk_create(events)
    transaction.on_commit(relay_schedule, robust=True)
    live_changed_on_commit({event.device_id for event in events})
    return events


def live_scope(device_id):
    """The device page's scope in portal.live: every event of the device marks it changed."""
    return f"device:{device_id}"


def live_changed_on_commit(device_ids):
    """Tells the open pages of these devices that something changed, once the change commits: a
    check-in, a status, a command's progress, a claim or a release each record an event."""
    live.changed_on_commit(live_scope(device_id) for device_id in device_ids)


def event_record(*, device, type, data=None):
    return events_record([DeviceEvent(device=device, type=type, data=data or {})])[0]


def relay_pending(*, batch_size=500) -> int:
    """Hands one batch of unhandled events to every consumer and marks them handled.

    Returns how many events were handled: 0 when there were none, or when a consumer failed. A
    failing consumer's writes are rolled back (its savepoint) and the batch stays unhandled, so
    the next run hands it over again to every consumer; the others' work is kept (they are
    idempotent).
    skip_locked lets several workers relay at once without taking the same events.
    """
    with transaction.atomic():
        events = list(
            DeviceEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(handled_at__isnull=True)
            .select_related("device", "device__product")
            .order_by("created_at")[:batch_size]
        )
        if not events:
            return 0
        failed = []
        for name, consume in list(_consumers.items()):
            try:
                with transaction.atomic():
                    consume(events)
            except Exception:
                # Not hidden: logged with its traceback, and the batch stays for the next run.
                logger.exception("outbox.consumer_failed", extra={"consumer": name, "events": len(events)})
                failed.append(name)
        if failed:
            return 0
        DeviceEvent.objects.filter(pk__in=[e.pk for e in events]).update(handled_at=timezone.now())
    logger.info("outbox.relayed", extra={"events": len(events)})
    return len(events)


def relay_all(*, batch_size=500, max_seconds=60.0) -> int:
    """Relays batches until none is left (or a consumer fails, or time is up for this run)."""
    total = 0
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        relayed = relay_pending(batch_size=batch_size)
        total += relayed
        if relayed < batch_size:
            break
    return total
