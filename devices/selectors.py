"""Reads of devices, always scoped to who is asking.

`device_list_for_owner` is the one place that decides which devices a person may see: every owner
page starts from it, so sharing (viewers, operators) will change this function and nothing else.
"""

from django.db.models import Count, F
from django.shortcuts import get_object_or_404

from .models import Device, DeviceStatus, Reading

DEVICE_SORTS = {
    "serial": ("serial",),
    "-serial": ("-serial",),
    "name": ("name", "serial"),
    "-name": ("-name", "-serial"),
    "status": ("status", "serial"),
    "-status": ("-status", "serial"),
    "last_seen": ("last_seen_at", "serial"),
    "-last_seen": ("-last_seen_at", "serial"),
}


def device_list_for_owner(user):
    """Every device `user` may see (today: the ones they own)."""
    if not getattr(user, "is_authenticated", False):
        return Device.objects.none()
    return Device.objects.filter(owner=user)


def device_get_for_owner(user, pk) -> Device:
    """The device with `pk` if `user` may see it; Http404 otherwise, whether it exists or not."""
    return get_object_or_404(device_list_for_owner(user).select_related("product"), pk=pk)


def device_page_for_owner(user, *, status=None, sort="serial", page=1, per_page=50):
    """One page of the owner's devices and whether another follows, in two queries at any size.

    No COUNT(*): the page asks for one row more than it shows to know if there is a next page.
    The (owner, serial) and (owner, status, serial) indexes serve the default order and the filter.
    """
    queryset = device_list_for_owner(user).select_related("product")
    if status in DeviceStatus.values:
        queryset = queryset.filter(status=status)
    if sort == "last_seen":
        queryset = queryset.order_by(F("last_seen_at").asc(nulls_first=True), "serial")
    elif sort == "-last_seen":
        # Most recently seen first; devices never seen go last on every database.
        queryset = queryset.order_by(F("last_seen_at").desc(nulls_last=True), "serial")
    else:
        queryset = queryset.order_by(*DEVICE_SORTS.get(sort, DEVICE_SORTS["serial"]))
    page = max(int(page), 1)
    offset = (page - 1) * per_page
    rows = list(queryset[offset : offset + per_page + 1])
    return rows[:per_page], len(rows) > per_page


def device_status_counts_for_owner(user) -> dict[str, int]:
    """How many of the owner's devices are in each status; one index-only GROUP BY."""
    counts = dict.fromkeys(DeviceStatus.values, 0)
    rows = device_list_for_owner(user).order_by().values_list("status").annotate(n=Count("*"))
    for status, n in rows:
        counts[status] = n
    return counts


def reading_list_for_device(device: Device, *, limit=200) -> list[Reading]:
    """The device's most recent readings since its owner got it, oldest first (for charts); served
    by reading_device_time. What it reported to an earlier owner is theirs, not the new owner's."""
    readings = Reading.objects.filter(device=device)
    if device.owned_since:
        readings = readings.filter(recorded_at__gte=device.owned_since)
    readings = list(readings.order_by("-recorded_at")[:limit])
    readings.reverse()
    return readings
