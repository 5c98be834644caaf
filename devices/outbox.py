"""The outbox: DeviceEvents written with the change they record, relayed to consumers after commit.

Higher apps register a consumer (a function taking a list of DeviceEvents) in their AppConfig.ready;
devices never imports them. Consumers must be idempotent: an event may be handed over twice
(a crash between a consumer's work and marking the event handled).
"""

import logging

from django.db import transaction
from django.utils import timezone

from .models import DeviceEvent

logger = logging.getLogger(__name__)

_consumers = {}


def register_consumer(name, func):
    _consumers[name] = func


def _enqueue_relay():
    from .tasks import relay_outbox as relay_outbox_task

    relay_outbox_task.delay()


def events_record(events):
    """Stores DeviceEvents (unsaved instances) and schedules the relay once the transaction commits.

    robust=True: a broker outage must never fail the change; the beat task relays what is left.
    """
    now = timezone.now()
    for event in events:
        event.created_at = event.created_at or now
    DeviceEvent.objects.bulk_create(events)
    transaction.on_commit(_enqueue_relay, robust=True)
    return events


def event_record(*, device, type, data=None):
    return events_record([DeviceEvent(device=device, type=type, data=data or {})])[0]


def relay_pending(*, batch_size=500):
    """Hands one batch of unhandled events to every consumer; returns how many were relayed.

    skip_locked lets several workers relay at once without taking the same events.
    """
    with transaction.atomic():
        events = list(
            DeviceEvent.objects.select_for_update(skip_locked=True)
            .filter(handled_at__isnull=True)
            .select_related("device", "device__product")
            .order_by("created_at")[:batch_size]
        )
        if not events:
            return 0
        for name, consume in _consumers.items():
            consume(events)
            logger.debug("outbox.consumed", extra={"consumer": name, "events": len(events)})
        DeviceEvent.objects.filter(pk__in=[e.pk for e in events]).update(handled_at=timezone.now())
    logger.info("outbox.relayed", extra={"events": len(events)})
    return len(events)
