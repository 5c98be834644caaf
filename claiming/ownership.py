"""A change of owner: one function moves devices to a new owner, records it, and ends what the
previous ownership had (see DESIGN.md, "Access: one module decides").

Claiming by code, by PIN, a pre-claim and an accepted transfer all call `ownership_change`; a reset
(`services.device_release`) moves the device to no one itself and shares `ownership_cleanup`, which
also ends the device's shares, invitations and support grants (`devices.sharing.sharing_end_for_device`).
"""

import logging

from django.db.models import Q
from django.utils import timezone

from apps.services import links
from devices.command_queue import commands_void_for_device
from devices.models import Device, DeviceEvent, DeviceEventType
from devices.outbox import events_record
from devices.services import device_owner_forget
from devices.sharing import sharing_end_for_device

from .models import OwnershipEvent, OwnershipEventKind, Transfer

logger = logging.getLogger(__name__)

# Written by every change of owner in the same conditional UPDATE that moves the device: the PIN
# goes with the claim flag, since the previous owner (or whoever read the label) still knows it.
HANDOVER_CLEARS = {"claimable": False, "pin_digest": "", "preclaim_email": ""}


def fields_set(device, fields):
    for name, value in fields.items():
        setattr(device, name, value)


def ownership_cleanup(*, device, actor, reason, ip=None):
    """What a change of owner takes away from the previous one: open offers, shares, invitations and
    support grants, open commands, links, credentials and the device's latest values. The
    device.released event is recorded before the links go, so it is the last thing the linked
    applications hear. Every change away from an owner passes here (a device nobody owns has nothing
    of an earlier ownership left), in the transaction of the change."""
    Transfer.objects.filter(device=device, accepted_at__isnull=True, cancelled_at__isnull=True).update(
        cancelled_at=timezone.now()
    )
    sharing_end_for_device(device, actor=actor, ip=ip)
    events_record([DeviceEvent(device=device, type=DeviceEventType.RELEASED, data={"reason": reason})])
    commands_void_for_device(device=device)
    links.device_links_remove(device=device, actor=actor)
    device_owner_forget(device=device)


def ownership_change(
    *,
    devices,
    new_owner,
    via: str,
    actor,
    ip,
    expected_owner_id=None,
    guard: Q | None = None,
    application=None,
    kind=OwnershipEventKind.CLAIMED,
    detail: str,
    at=None,
) -> list[Device]:
    """Gives those of `devices` still as they were read to `new_owner`; returns the ones this call
    moved (ordered by serial), each with an OwnershipEvent and a `device.claimed` event.

    One conditional UPDATE decides: a row moves only while its owner is still `expected_owner_id`
    (None: unowned) and `guard` (the route's own conditions) still holds, so when requests race
    the database lets exactly one of them change each row. Stamping owned_since with this call's
    own timestamp (`at`, else now) tells the rows it changed apart from the ones someone else won
    in between.
    Devices taken from an owner lose what that ownership had (`ownership_cleanup`, reason
    "transfer" for a transfer, else "new_owner"). With `application`, each device is linked to it.
    Runs in the caller's transaction.
    """
    now = at or timezone.now()
    ids = [device.pk for device in devices]
    Device.objects.filter(guard or Q(), pk__in=ids, owner_id=expected_owner_id).update(
        owner=new_owner, owned_since=now, **HANDOVER_CLEARS
    )
    won = list(
        Device.objects.filter(pk__in=ids, owner=new_owner, owned_since=now).select_related("product").order_by("serial")
    )
    if not won:
        return []
    if expected_owner_id is not None:
        reason = "transfer" if via == "transfer" else "new_owner"
        for device in won:
            ownership_cleanup(device=device, actor=actor, reason=reason, ip=ip)
    OwnershipEvent.objects.bulk_create(
        [OwnershipEvent(device=device, kind=kind, actor=actor, owner=new_owner, ip=ip, detail=detail) for device in won]
    )
    data = {"via": via}
    if application is not None:
        data["application_id"] = application.app_id
    claimed = events_record([DeviceEvent(device=device, type=DeviceEventType.CLAIMED, data=data) for device in won])
    if application is not None:
        for device, event in zip(won, claimed, strict=True):
            links.device_link(device=device, application=application, actor=new_owner, linked_at=event.created_at)
    return won
