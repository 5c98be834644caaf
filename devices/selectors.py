"""Page queries on devices (sorting, paging, counts, charts), always scoped to who is asking.

Who may see which device is decided in `devices.access`; every function here starts from it.
"""

from django.db.models import Count, F

from . import access
from .models import Command, Device, DeviceStatus, Reading

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
COMMAND_LIMIT = 20


def device_list_for_owner(user):
    """Every device `user` may see (`access.devices_visible_to`)."""
    return access.devices_visible_to(user, access.SEE)


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
    readings = access.history_since(
        Reading.objects.filter(device=device), "recorded_at", access.history_start_for_user(device)
    )
    readings = list(readings.order_by("-recorded_at")[:limit])
    readings.reverse()
    return readings


def command_list_for_device(device: Device, *, limit=COMMAND_LIMIT) -> list[Command]:
    """The commands sent since the device's owner got it, newest first: an earlier owner's are not
    theirs to read."""
    commands = access.history_since(
        Command.objects.filter(device=device), "created_at", access.history_start_for_user(device)
    )
    return list(commands.order_by("-created_at")[:limit])
