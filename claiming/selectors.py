"""Reads for the owner's pages of claiming: ownership history, transfer offers, linked applications.

Every function takes a device the caller already got from `devices.access.device_for`.
"""

from apps.models import AppLink
from devices.selectors import command_list_for_device  # noqa: F401  (read by the device page)

from .models import OwnershipEvent, OwnershipEventKind, Transfer

HISTORY_LIMIT = 50


def ownership_history_for_device(device, *, viewer, limit=HISTORY_LIMIT):
    """The device's ownership events, newest first, each with `whom`: who did it, said from
    `viewer`'s side ("by you", "by support", "by another account"; a transfer is said by where it
    went: "to you" for its recipient, "to another account" for anyone else).

    Earlier owners are not named. `is_viewer` marks the viewer's own actions, whose address and
    detail they may see.
    """
    events = list(OwnershipEvent.objects.filter(device=device).select_related("actor").order_by("-created_at")[:limit])
    for event in events:
        event.is_viewer = event.actor_id == viewer.pk
        if event.kind == OwnershipEventKind.TRANSFERRED:
            # Recorded by its recipient, who accepted it; "transferred by you" would read as if
            # they had given the device away.
            event.whom = "to you" if event.owner_id == viewer.pk else "to another account"
        elif event.is_viewer:
            event.whom = "by you"
        elif event.actor is not None and event.actor.is_staff:
            event.whom = "by support"
        elif event.actor_id is None:
            event.whom = "by the system"
        else:
            event.whom = "by another account"
    return events


def transfer_open_for_device(device):
    return Transfer.objects.filter(device=device, accepted_at__isnull=True, cancelled_at__isnull=True).first()


def app_link_list_for_device(device):
    return list(AppLink.objects.filter(device=device).select_related("application").order_by("application__name"))
