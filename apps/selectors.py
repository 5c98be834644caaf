"""Reads of applications, always scoped to who is asking.

`application_list_for_owner` is the one place that decides which applications a person may see:
their own, the OEM's managed ones, and those they added through a connect link. Every page and
every service that takes an application from a person starts from it.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, DateTimeField, Exists, Max, OuterRef, Q, Value
from django.http import Http404
from django.utils import timezone

from devices import access
from devices.models import DeviceEvent
from portal.errors import NotFound
from portal.text import storable

from .models import PRIVATE_EVENTS, Application, AppLink, Connection, Delivery, DeliveryStatus, EndedLink


class ApplicationNotFound(NotFound, Http404):
    """404 for a service caller (NotFound) and for a Django view (Http404) alike."""

    message = "No such application."


def application_list_for_owner(user):
    """Every application `user` may see and link devices to."""
    if not getattr(user, "is_authenticated", False):
        return Application.objects.none()
    connected = Connection.objects.filter(user=user).values("application_id")
    # A subquery rather than a join on connections, so no DISTINCT is needed.
    return Application.objects.filter(Q(owner=user) | Q(managed=True) | Q(pk__in=connected))


def application_get_for_owner(user, app_id) -> Application:
    """The application `app_id` if `user` may see it; 404 otherwise, whether it exists or not."""
    if not storable(app_id):
        raise ApplicationNotFound()
    application = application_list_for_owner(user).filter(app_id=app_id).first()
    if application is None:
        raise ApplicationNotFound()
    return application


def application_get_owned(user, app_id) -> Application:
    """The application `app_id` if `user` owns it (may change its settings and read its log)."""
    application = application_get_for_owner(user, app_id)
    if not application_can_manage(user, application):
        raise ApplicationNotFound()
    return application


def application_can_manage(user, application) -> bool:
    """Whether `user` may change `application`'s settings and read its log: they own it."""
    return application.owner_id is not None and application.owner_id == getattr(user, "pk", None)


# --- which events an application hears ----------------------------------------------------------
#
# An application hears an event of a device only if the device was linked to it when the event
# happened: a link, current or ended, whose [linked_at, unlinked_at] covers the event's time (the
# unlink moment included, so the device.unlinked or device.released that ends a link reaches its
# application). Links end at every change of owner, so a link never spans two ownerships. Events
# about one link, and command.updated, are heard only by the application their data names.
# Fan-out, replay and the events API all ask here.


def _private_to(event_type, data, app_id) -> bool:
    """Whether an event that names an application is kept from the others."""
    return event_type in PRIVATE_EVENTS and (data or {}).get("application_id") != app_id


def event_audiences(events, *, applications=None) -> dict:
    """{event pk: [application pk, …]} for a batch of events, in two queries; `applications`
    (a queryset) narrows the candidates, e.g. to those with a callback."""
    if not events:
        return {}
    device_ids = {event.device_id for event in events}
    earliest = min(event.created_at for event in events)
    current = AppLink.objects.filter(device_id__in=device_ids)
    ended = EndedLink.objects.filter(device_id__in=device_ids, unlinked_at__gte=earliest)
    if applications is not None:
        current = current.filter(application_id__in=applications.values("pk"))
        ended = ended.filter(application_id__in=applications.values("pk"))
    # One query for both: the current links with no end, then the ended ones.
    current = current.annotate(unlinked_at=Value(None, output_field=DateTimeField())).values_list(
        "device_id", "application_id", "application__app_id", "created_at", "unlinked_at"
    )
    ended = ended.values_list("device_id", "application_id", "application__app_id", "linked_at", "unlinked_at")
    periods = {}
    for device_id, *period in current.union(ended, all=True):
        periods.setdefault(device_id, []).append(period)
    audiences = {}
    for event in events:
        heard_by = []
        for application_id, app_id, linked_at, unlinked_at in periods.get(event.device_id, ()):
            covered = linked_at <= event.created_at and (unlinked_at is None or event.created_at <= unlinked_at)
            if covered and application_id not in heard_by and not _private_to(event.type, event.data, app_id):
                heard_by.append(application_id)
        if heard_by:
            audiences[event.pk] = heard_by
    return audiences


def events_heard_by(application):
    """The same rule as a queryset of DeviceEvents, for the events API and replay."""
    current = AppLink.objects.filter(
        application=application, device_id=OuterRef("device_id"), created_at__lte=OuterRef("created_at")
    )
    ended = EndedLink.objects.filter(
        application=application,
        device_id=OuterRef("device_id"),
        linked_at__lte=OuterRef("created_at"),
        unlinked_at__gte=OuterRef("created_at"),
    )
    # The devices it ever heard first, so the time checks run on their events only.
    devices = Q(device_id__in=AppLink.objects.filter(application=application).values("device_id")) | Q(
        device_id__in=EndedLink.objects.filter(application=application).values("device_id")
    )
    return (
        DeviceEvent.objects.filter(devices)
        .filter(Exists(current) | Exists(ended))
        .filter(~Q(type__in=PRIVATE_EVENTS) | Q(data__application_id=application.app_id))
    )


def application_lists_for_owner(user) -> dict:
    """The /apps/ page: the user's own applications, the managed ones, and the connected ones."""
    own, managed, connected = [], [], []
    for application in application_list_for_owner(user).annotate(
        my_devices=Count("links", filter=Q(links__device__in=access.devices_visible_to(user, access.MANAGE)))
    ):
        if application.owner_id == user.pk:
            own.append(application)
        elif application.managed:
            managed.append(application)
        else:
            connected.append(application)
    return {"own": own, "managed": managed, "connected": connected}


def app_links_for_owner(user, application):
    """The links between `user`'s devices and `application`."""
    return (
        AppLink.objects.filter(application=application, device__in=access.devices_visible_to(user, access.MANAGE))
        .select_related("device", "device__product")
        .order_by("device__name", "device__serial")
    )


def devices_linkable_for_owner(user, application):
    """The user's devices not yet linked to `application`."""
    return (
        access.devices_visible_to(user, access.MANAGE)
        .exclude(app_links__application=application)
        .select_related("product")
        .order_by("name", "serial")
    )


# The delivery log: 25 a page, newest first, by cursor (an OFFSET would read every skipped row, and
# a page would shift as new deliveries arrive).
DELIVERY_PAGE_SIZE = 25


@dataclass
class DeliveryPage:
    rows: list
    older: str | None  # the cursor of the next page (older deliveries), or None: this is the last
    newer: str | None  # the cursor of the previous page (newer deliveries), or None: this is the first


def _cursor(delivery) -> str:
    text = f"{delivery.created_at.isoformat()}|{delivery.pk}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _position(cursor):
    """(created_at, pk) of a cursor, or None for a malformed one (the first page is shown)."""
    if not cursor or not storable(cursor):
        return None
    try:
        created, pk = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        return datetime.fromisoformat(created), int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _deliveries(application, failed_only):
    queryset = Delivery.objects.filter(application=application).select_related("event__device")
    if failed_only:
        queryset = queryset.filter(status=DeliveryStatus.FAILED)
    return queryset


def delivery_page_for_application(application, *, failed_only=False, before=None, after=None,
                                  size=DELIVERY_PAGE_SIZE) -> DeliveryPage:
    """One page of the application's deliveries, newest first: the first page, the one older than
    cursor `before` or the one newer than cursor `after`. One query (a row more than the page, to
    know whether another follows), served by delivery_app_time (application, -created_at); ties on
    created_at are broken by the primary key, so no row is shown twice or skipped."""
    queryset = _deliveries(application, failed_only)
    older_than, newer_than = _position(before), _position(after)
    if newer_than is not None:
        created, pk = newer_than
        newer = queryset.filter(Q(created_at__gt=created) | Q(created_at=created, pk__gt=pk))
        rows = list(newer.order_by("created_at", "pk")[: size + 1])
        if len(rows) > size:  # a page between this one and the newest
            rows = rows[:size][::-1]
            return DeliveryPage(rows, _cursor(rows[-1]), _cursor(rows[0]))
        older_than = None  # back at the newest: the first page, full
    if older_than is not None:
        created, pk = older_than
        queryset = queryset.filter(Q(created_at__lt=created) | Q(created_at=created, pk__lt=pk))
    rows = list(queryset.order_by("-created_at", "-pk")[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    older = _cursor(rows[-1]) if rows and more_older else None
    newer = _cursor(rows[0]) if rows and older_than is not None else None
    return DeliveryPage(rows, older, newer)


def delivery_log_version(application, page: DeliveryPage):
    """The version of the delivery log as shown (portal/live.py): each row's state on the page and
    the application's pause and callback; what the page's one query already read."""
    rows = [(d.pk, d.status, d.attempts, d.last_attempt_at, d.next_attempt_at) for d in page.rows]
    return (application.paused_at, application.callback_off_at, application.callback_url, rows, page.older, page.newer)


def delivery_get_for_application(application, delivery_id) -> Delivery:
    delivery = Delivery.objects.filter(application=application, pk=delivery_id).first()
    if delivery is None:
        raise ApplicationNotFound("No such delivery.")
    return delivery


def delivery_health_for_application(application, *, now=None) -> dict:
    """Success rate over 24 h (attempted deliveries), last success and last failure."""
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    recent = Delivery.objects.filter(application=application, created_at__gte=since)
    counts = recent.aggregate(
        succeeded=Count("pk", filter=Q(status=DeliveryStatus.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=DeliveryStatus.FAILED)),
        retrying=Count("pk", filter=Q(status=DeliveryStatus.PENDING, attempts__gt=0)),
        pending=Count("pk", filter=Q(status=DeliveryStatus.PENDING)),
    )
    attempted = counts["succeeded"] + counts["failed"] + counts["retrying"]
    everything = Delivery.objects.filter(application=application)
    last = everything.aggregate(
        success=Max("delivered_at"),
        failure=Max("last_attempt_at", filter=~Q(status=DeliveryStatus.SUCCEEDED) & Q(attempts__gt=0)),
    )
    return {
        "rate": round(100 * counts["succeeded"] / attempted) if attempted else None,
        "attempted": attempted,
        "pending": counts["pending"],
        "failed": counts["failed"],
        "last_success": last["success"],
        "last_failure": last["failure"],
    }


def application_connected(user, application) -> bool:
    """Whether `user` added `application` through a connect link (and so may remove it)."""
    return Connection.objects.filter(application=application, user=user).exists()


def app_link_count_for_others(user, application) -> int:
    """How many devices of other owners are linked to `user`'s application (through connect links)."""
    others = AppLink.objects.filter(application=application)
    return others.exclude(device__in=access.devices_visible_to(user, access.MANAGE)).count()


def app_link_list_for_device(device):
    """The applications `device` is linked to, by name (a device its caller got from `devices.access`)."""
    return list(AppLink.objects.filter(device=device).select_related("application").order_by("application__name"))
