"""Celery tasks of the devices app: thin wrappers over services. Several modules add tasks here."""

import logging

from celery import shared_task

from . import outbox

logger = logging.getLogger(__name__)


@shared_task(name="devices.tasks.relay_outbox")
def relay_outbox():
    """Relays unhandled DeviceEvents; after commit for fresh events, and every 30 s from beat."""
    total = 0
    while relayed := outbox.relay_pending():
        total += relayed
    return total
