"""Fan-out: the outbox's events become Delivery rows, one per application that hears them, whose
sends are queued after commit (enqueue, then publish to the broker); and the owner's actions on
deliveries (retry one, replay the failed, send a test). How a queued delivery is sent, and why
none is lost, is in `sending`."""

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from portal.errors import Conflict

from ..models import Application, Delivery, DeliveryStatus
from ..selectors import event_audiences, events_heard_by

logger = logging.getLogger(__name__)

# A queued send owns its delivery this long; if the message is lost, the beat task takes it after.
ENQUEUE_LEASE = timedelta(minutes=2)
# How many deliveries are queued at once: by the beat task, a resume, a replay.
DUE_BATCH = 500
# Deliveries a send task takes at once (fewer queue round trips and queries per delivery).
CHUNK_SIZE = 50


def deliveries_fan_out(events):
    """Outbox consumer: one Delivery per (event, application that hears it and has a callback);
    who hears what is `event_audiences`.

    A paused application's rows are held (pending, no next attempt): they go out when it is
    resumed. Written in bulk; the unique (event, application) pair makes a second hand-over of the
    same event a no-op. Sends are queued after commit.
    """
    if not events:
        return 0
    audiences = event_audiences(events, applications=Application.objects.exclude(callback_url=""))
    if not audiences:
        return 0
    # Fresh rows carry this lease, which tells them apart from rows an earlier hand-over wrote.
    lease = timezone.now() + ENQUEUE_LEASE
    rows = [
        Delivery(application_id=application_id, event=event, event_type=event.type, next_attempt_at=lease)
        for event in events
        for application_id in audiences.get(event.pk, ())
    ]
    Delivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    fresh = Delivery.objects.filter(
        event_id__in=[event.pk for event in events], next_attempt_at=lease, status=DeliveryStatus.PENDING
    ).values_list("pk", "application__paused_at")
    ids, held = [], []
    for pk, paused_at in fresh:
        (ids if paused_at is None else held).append(pk)
    if held:
        Delivery.objects.filter(pk__in=held).update(next_attempt_at=None)
    _deliveries_enqueue(ids, lease)
    return len(ids)


def _deliveries_enqueue(ids, lease, *, countdown=None, chunk_size=CHUNK_SIZE):
    if ids:
        transaction.on_commit(
            lambda: _deliveries_publish(ids, lease, countdown=countdown, chunk_size=chunk_size), robust=True
        )


def _deliveries_publish(ids, lease, *, countdown=None, chunk_size=CHUNK_SIZE):
    """Queues the sends, `chunk_size` deliveries a task. Nothing is lost when the broker is down:
    the rows fall due when their lease ends and the beat task queues them again."""
    from ..tasks import deliveries_send as deliveries_send_task

    for start in range(0, len(ids), chunk_size):
        chunk = list(ids[start : start + chunk_size])
        try:
            deliveries_send_task.apply_async((chunk,), {"lease": lease.isoformat()}, countdown=countdown)
        except OperationalError:
            # Each failed publish waits for the broker's connect timeout: stop at the first.
            logger.error("delivery.publish_failed", extra={"deliveries": len(ids)}, exc_info=True)
            return


# --- owner actions on deliveries ---------------------------------------------------------------


def _requeue(queryset) -> int:
    lease = timezone.now() + ENQUEUE_LEASE
    ids = list(queryset.values_list("pk", flat=True)[:DUE_BATCH])
    Delivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=lease, last_error=""
    )
    _deliveries_enqueue(ids, lease)
    return len(ids)


def _replayable(application):
    """The application's deliveries it may be sent again: tests, and events it hears."""
    heard = events_heard_by(application).values("pk")
    return Delivery.objects.filter(application=application).filter(Q(event__isnull=True) | Q(event_id__in=heard))


@transaction.atomic
def delivery_retry(*, delivery) -> None:
    """Sends one delivery again at once, with a fresh schedule."""
    if delivery.status == DeliveryStatus.SUCCEEDED:
        raise Conflict("This delivery has already succeeded.", code="delivery_succeeded")
    if not delivery.application.callback_url:
        raise Conflict("Set a callback URL first.", code="no_callback")
    if not _replayable(delivery.application).filter(pk=delivery.pk).exists():
        raise Conflict("This application does not hear this event.", code="event_not_heard")
    _requeue(Delivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.SUCCEEDED))


@transaction.atomic
def deliveries_replay_failed(*, application) -> int:
    """Sends every failed delivery of the application again, with a fresh schedule."""
    if not application.callback_url:
        raise Conflict("Set a callback URL first.", code="no_callback")
    total = 0
    failed = _replayable(application).filter(status=DeliveryStatus.FAILED)
    while batch := _requeue(failed):
        total += batch
    return total


@transaction.atomic
def delivery_send_test(*, application) -> Delivery:
    """Queues a `ping` event to the callback, so the owner can check the set-up."""
    # Imported here: webhooks imports applications, which imports this module at its top.
    from .webhooks import _iso

    if not application.callback_url:
        raise Conflict("Set a callback URL first.", code="no_callback")
    lease = timezone.now() + ENQUEUE_LEASE
    event_id = str(uuid.uuid4())
    delivery = Delivery.objects.create(
        application=application,
        event=None,
        event_type="ping",
        payload={
            "id": event_id,
            "type": "ping",
            "created_at": _iso(timezone.now()),
            "device": None,
            "data": {"message": "A test event from the portal."},
        },
        next_attempt_at=lease,
    )
    _deliveries_enqueue([delivery.pk], lease)
    return delivery
