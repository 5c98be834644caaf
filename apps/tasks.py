"""Celery tasks of the apps app: thin wrappers over the delivery sending."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="apps.tasks.delivery_send")
def delivery_send(delivery_id, lease=None):
    """One attempt of one delivery; a duplicate or stale message finds nothing to take."""
    from .services import sending

    outcome = sending.delivery_send(delivery_id=delivery_id, lease=sending.lease_parse(lease))
    logger.info(
        "delivery.task_done",
        extra={"task_id": delivery_send.request.id, "delivery_id": delivery_id, "outcome": outcome},
    )
    return outcome


@shared_task(name="apps.tasks.deliveries_send")
def deliveries_send(delivery_ids, lease=None):
    """One attempt of each of a chunk of deliveries (what fan-out and the beat task queue)."""
    from .services import sending

    outcomes = sending.deliveries_send(delivery_ids=delivery_ids, lease=sending.lease_parse(lease))
    logger.info(
        "delivery.chunk_done",
        extra={"task_id": deliveries_send.request.id, "deliveries": len(delivery_ids), "attempted": len(outcomes)},
    )
    return len(outcomes)


@shared_task(name="apps.tasks.deliveries_send_due")
def deliveries_send_due():
    """Queues deliveries whose time has come (every 30 s from beat), whatever became of their messages."""
    from .services import sending

    return sending.deliveries_send_due()
