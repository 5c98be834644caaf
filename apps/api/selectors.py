"""Reads of the integrator API, always scoped to the calling application.

`device_list_for_application` is the one place that decides which devices an application may see:
the devices linked to it (AppLink) that still have an owner. Every endpoint starts from it, so a
device the application may not see is a 404 everywhere, whether it exists or not. The device list
on PostgreSQL reads its pages with a statement of its own (`LinkedDeviceRows`) that says the same,
and a test holds the two together.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import F
from django.utils import timezone

from apps import sql
from apps.models import Application
from apps.selectors import events_heard_by
from devices import access
from devices.models import Command, Device, Reading
from portal.errors import NotFound

EVENTS_DEFAULT_WINDOW = timedelta(hours=24)

DEVICE_NOT_FOUND = "No device with this id is linked to your application."
COMMAND_NOT_FOUND = "No command with this id was sent by your application to this device."


def device_list_for_application(application: Application):
    """Every device `application` may see: linked to it, and owned (a released device is nobody's)."""
    return access.devices_owned().filter(app_links__application=application)


def device_get_for_application(application: Application, pk) -> Device:
    """The device with `pk` if `application` may see it; NotFound otherwise, whether it exists or not."""
    device = device_list_for_application(application).select_related("product").filter(pk=pk).first()
    if device is None:
        raise NotFound(DEVICE_NOT_FOUND, code="device_not_found")
    return device


def device_filter(queryset, *, status=None, product=None, seen_since=None):
    if status:
        queryset = queryset.filter(status=status)
    if product:
        queryset = queryset.filter(product__slug=product)
    if seen_since:
        queryset = queryset.filter(last_seen_at__gte=seen_since)
    return queryset


# What a row of the device list holds: these device columns, and the product's slug as `product_slug`.
DEVICE_ROW_COLUMNS = ("id", "serial", "name", "status", "last_seen_at", "last_ip")
DEVICE_ROW_KEYS = (*DEVICE_ROW_COLUMNS, "product_slug")


@dataclass(frozen=True)
class LinkedDeviceRows:
    """The devices of device_list_for_application, filtered as device_filter does, as dicts of
    DEVICE_ROW_KEYS: the rows of the device list.

    The cursor pagination reads it as it reads a queryset: `order_by` the serial, `filter` past a
    serial, one slice. On PostgreSQL the slice is one written statement: building, compiling and
    reading the ORM's query for a page of 100 cost more CPU than the rest of the request together
    (docs/performance.md). Elsewhere (the embedded default, SQLite) the ORM reads it.
    tests/apps/test_api_device_rows.py reads both ways on PostgreSQL and compares them.
    """

    application: Application
    status: str | None = None
    product: str | None = None
    seen_since: datetime | None = None
    descending: bool = False
    past: tuple[str, str] | None = None  # ("gt" or "lt", a serial)

    def order_by(self, *ordering):
        if ordering not in (("serial",), ("-serial",)):
            raise NotImplementedError(f"The device list is ordered by serial, not {ordering}.")
        return replace(self, descending=ordering == ("-serial",))

    def filter(self, **lookup):
        [(key, serial)] = lookup.items()
        if key not in ("serial__gt", "serial__lt"):
            raise NotImplementedError(f"The device list is bounded by serial, not {key}.")
        return replace(self, past=(key.removeprefix("serial__"), serial))

    def __getitem__(self, page: slice) -> list[dict]:
        if connection.vendor == "postgresql":
            return self.read_by_statement(page)
        return self.read_by_orm(page)

    def read_by_orm(self, page: slice) -> list[dict]:
        devices = device_filter(
            device_list_for_application(self.application),
            status=self.status, product=self.product, seen_since=self.seen_since,
        )
        rows = devices.values(*DEVICE_ROW_COLUMNS, product_slug=F("product__slug"))
        rows = rows.order_by("-serial" if self.descending else "serial")
        if self.past:
            rows = rows.filter(**{f"serial__{self.past[0]}": self.past[1]})
        return list(rows[page])

    def read_by_statement(self, page: slice) -> list[dict]:
        # device_list_for_application's rule: linked to the application, and owned by somebody.
        conditions, params = ["l.application_id = %s", "d.owner_id IS NOT NULL"], [self.application.pk]
        for condition, value in (
            ("d.status = %s", self.status),
            ("p.slug = %s", self.product),
            ("d.last_seen_at >= %s", self.seen_since),
        ):
            if value:  # device_filter leaves out what is not given, as here
                conditions.append(condition)
                params.append(value)
        if self.past:
            conditions.append("d.serial > %s" if self.past[0] == "gt" else "d.serial < %s")
            params.append(self.past[1])
        return sql.linked_device_rows(
            conditions, params, columns=DEVICE_ROW_COLUMNS, keys=DEVICE_ROW_KEYS,
            descending=self.descending, offset=page.start, limit=page.stop - page.start,
        )  # fmt: skip


def reading_list_for_device(application: Application, device: Device, *, since=None, until=None):
    """The device's readings in [since, until) recorded since it was linked to `application`; served
    by the reading_device_time index. As with events, the link bounds what the application reads."""
    start = access.history_start_for_application(application, device)
    readings = access.history_since(Reading.objects.filter(device=device), "recorded_at", start)
    if since:
        readings = readings.filter(recorded_at__gte=since)
    if until:
        readings = readings.filter(recorded_at__lt=until)
    return readings


def command_list_for_application(application: Application, device: Device):
    """Commands `application` sent to `device`: an application follows its own, not the owner's or others'."""
    return Command.objects.filter(device=device, sent_by_app=application.app_id)


def command_get_for_application(application: Application, device: Device, pk) -> Command:
    command = command_list_for_application(application, device).filter(pk=pk).first()
    if command is None:
        raise NotFound(COMMAND_NOT_FOUND, code="command_not_found")
    return command


def event_list_for_application(application: Application, *, since=None):
    """The events `application` hears (`apps.selectors.events_heard_by`, the rule webhooks follow
    too), recorded since `since` (default: the last 24 hours).

    They stay listed after the device was unlinked, reset or passed on: its last events, the
    device.unlinked or device.released that ended the link, are how a polling application learns
    the device left.
    """
    since = since or timezone.now() - EVENTS_DEFAULT_WINDOW
    return events_heard_by(application).filter(created_at__gte=since).select_related("device__product")
