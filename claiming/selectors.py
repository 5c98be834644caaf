"""Reads for the owner's pages of claiming: ownership history, transfer offers, linked applications.

Every function takes a device the caller already got from `devices.selectors.device_get_for_owner`.
"""

from apps.models import AppLink
from devices.models import Command

from .models import OwnershipEvent, Transfer

HISTORY_LIMIT = 50
COMMAND_LIMIT = 20


def ownership_history_for_device(device, *, viewer, limit=HISTORY_LIMIT):
    """The device's ownership events, newest first, with who did it said from `viewer`'s side.

    Earlier owners are not named: an owner sees "you", "support" (staff) or "another account".
    """
    events = list(OwnershipEvent.objects.filter(device=device).select_related("actor").order_by("-created_at")[:limit])
    for event in events:
        event.is_viewer = event.actor_id == viewer.pk
        if event.is_viewer:
            event.actor_label = "You"
        elif event.actor is not None and event.actor.is_staff:
            event.actor_label = "Support"
        elif event.actor_id is None:
            event.actor_label = "System"
        else:
            event.actor_label = "Another account"
    return events


def transfer_open_for_device(device):
    return Transfer.objects.filter(device=device, accepted_at__isnull=True, cancelled_at__isnull=True).first()


def app_link_list_for_device(device):
    return list(AppLink.objects.filter(device=device).select_related("application").order_by("application__name"))


def command_list_for_device(device, *, limit=COMMAND_LIMIT):
    """The commands sent since the device's owner got it: an earlier owner's are not theirs to read."""
    commands = Command.objects.filter(device=device)
    if device.owned_since:
        commands = commands.filter(created_at__gte=device.owned_since)
    return list(commands.order_by("-created_at")[:limit])
