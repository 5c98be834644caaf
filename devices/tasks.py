"""Celery tasks of the devices app: thin wrappers over services. Several modules add tasks here."""

import logging

from celery import shared_task

from . import command_queue, outbox

logger = logging.getLogger(__name__)


@shared_task(name="devices.tasks.relay_outbox")
def relay_outbox():
    """Relays unhandled DeviceEvents; after commit for fresh events, and every 30 s from beat."""
    return outbox.relay_all()


@shared_task(name="devices.tasks.expire_commands")
def expire_commands():
    """Marks commands past their TTL expired (every minute from beat)."""
    return command_queue.commands_expire()


@shared_task(name="devices.tasks.mark_stale_devices")
def mark_stale_devices():
    """Marks devices offline past their product's threshold and mails their owners (every 60 s)."""
    from .stale import devices_mark_stale

    return devices_mark_stale()


@shared_task(name="devices.tasks.prune_old_data")
def prune_old_data():
    """Deletes old readings and handled events in small batches (daily)."""
    from .retention import data_prune

    return data_prune()


@shared_task(name="devices.tasks.expire_support_grants")
def expire_support_grants():
    """Ends support grants whose time ran out, with their audit entries (every minute from beat).
    Access never waits for it: an expired grant gives nothing from its end on."""
    from .sharing import support_grants_expire

    return support_grants_expire()
