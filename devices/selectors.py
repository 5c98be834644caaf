"""Page queries on devices (sorting, paging, counts, charts), always scoped to who is asking.

Who may see which device is decided in `devices.access`; every function here starts from it.
"""

from django.db.models import Count, F, Max
from django.utils import timezone

from . import access, sql
from .models import (
    AccessEvent,
    AccessEventKind,
    Command,
    Device,
    DeviceStatus,
    Invitation,
    InvitationState,
    Reading,
    Share,
)

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
    """Every device `user` owns or that is shared with them (`access.devices_visible_to`), each with
    `access_role`; what a support grant gives is on the support page, where each view is recorded."""
    return access.devices_with_roles(user, include_support=False)


def device_page_for_owner(user, *, status=None, sort="serial", page=1, per_page=50):
    """One page of the owner's devices and whether another follows, in two queries at any size.

    No COUNT(*): the page asks for one row more than it shows to know if there is a next page.
    The (owner, serial) and (owner, status, serial) indexes serve the default order and the filter.
    """
    # The owner's email for "shared by …": a join of the page's rows, in the same statement.
    queryset = device_list_for_owner(user).select_related("product", "owner")
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
    """How many of the devices the person sees in their list are in each status; one GROUP BY."""
    counts = dict.fromkeys(DeviceStatus.values, 0)
    visible = access.devices_visible_to(user, access.SEE, include_support=False)
    rows = visible.order_by().values_list("status").annotate(n=Count("*"))
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


def readings_in_range(device: Device, *, since, until=None):
    """The device's readings from `since` (and before `until`), bounded where the history its
    viewer may see starts (the current ownership): the charts' and the CSV's one read."""
    readings = Reading.objects.filter(device=device, recorded_at__gte=since)
    if until is not None:
        readings = readings.filter(recorded_at__lt=until)
    return access.history_since(readings, "recorded_at", access.history_start_for_user(device))


def reading_buckets_for_device(device: Device, *, keys, since, until, start: int, width: int) -> list[tuple]:
    """Each key's count, min, max and average per time bucket of the device's readings in the range
    (devices.sql.reading_buckets_run; one statement, served by reading_device_time)."""
    if not keys:
        return []
    return sql.reading_buckets_run(readings_in_range(device, since=since, until=until), keys=keys, start=start,
                                   width=width)  # fmt: skip


def command_list_for_device(device: Device, *, limit=COMMAND_LIMIT) -> list[Command]:
    """The commands sent since the device's owner got it, newest first: an earlier owner's are not
    theirs to read."""
    commands = access.history_since(
        Command.objects.filter(device=device), "created_at", access.history_start_for_user(device)
    )
    return list(commands.order_by("-created_at")[:limit])


# --- live pages (portal/live.py): what a page shows changed iff its version did; one query each ---


def device_live_version(device: Device):
    """The version of what the device page's live panels show: the device row's fields they read
    (`device` is fresh from access.device_for: no query) and its commands' latest change (a new
    command, a status, a result: each sets updated_at). A check-in moves last_seen_at, so values and
    charts are covered by it."""
    commands = Command.objects.filter(device=device).aggregate(changed=Max("updated_at"), count=Count("pk"))
    return (
        device.status, device.last_seen_at, device.name, device.owned_since, device.claimable, device.token_issued_at,
        device.token_used_at, device.certificate_serial, device.access_role, commands["changed"], commands["count"],
    )  # fmt: skip


def device_list_live_version(user):
    """The version of the person's device list: per status, how many and the latest check-in (a
    check-in, a device going offline, a device shared or released each move one). One GROUP BY."""
    visible = access.devices_visible_to(user, access.SEE, include_support=False)
    rows = visible.order_by().values_list("status").annotate(n=Count("*"), seen=Max("last_seen_at"))
    return sorted(rows, key=lambda row: row[0])


# --- sharing (for the owner's panels of the device page; each takes a device from access.device_for) ---

AUDIT_LIMIT = 50


def share_list_for_device(device) -> list[Share]:
    """Who the device is shared with, oldest first (for its owner)."""
    return list(Share.objects.filter(device=device).select_related("user").order_by("created_at", "pk"))


def invitation_list_pending_for_device(device) -> list[Invitation]:
    """The device's pending invitations, newest first, each with `is_expired` (an expired one no
    longer works and may be sent again)."""
    now = timezone.now()
    invitations = list(Invitation.objects.filter(device=device, state=InvitationState.PENDING).order_by("-created_at"))
    for invitation in invitations:
        invitation.is_expired = invitation.expires_at <= now
    return invitations


def support_grant_live_for_device(device):
    """The device's live support grant (access.live_grants), or None."""
    return access.live_grants().filter(device=device).first()


def share_for(user, device):
    """The share that gives `user` the device, or None (its owner and support have none)."""
    return Share.objects.filter(device=device, user=user).first() if user.is_authenticated else None


def access_event_list_for_device(device, *, viewer, limit=AUDIT_LIMIT) -> list[AccessEvent]:
    """The device's access audit since its owner got it, newest first, each with `whom`: who did it
    from `viewer`'s side ("you", "support", the person's address, "the portal").

    Ends written by the change of owner itself (ended_by_owner_change) are the previous ownership's:
    the next owner is not shown whom the device was shared with before."""
    start = access.history_start_for_user(device)
    events = access.history_since(AccessEvent.objects.filter(device=device), "created_at", start)
    events = list(
        events.exclude(kind=AccessEventKind.ENDED_BY_OWNER_CHANGE).select_related("actor").order_by("-created_at")[
            :limit
        ]
    )
    for event in events:
        if event.actor_id is None:
            event.whom = "the portal"
        elif event.actor_id == viewer.pk:
            event.whom = "you"
        elif event.actor.is_staff and event.kind == AccessEventKind.SUPPORT_VIEWED:
            event.whom = "the maker's support"
        else:
            event.whom = event.actor.email
    return events
