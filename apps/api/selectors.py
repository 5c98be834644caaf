"""Reads of the integrator API, always scoped to the calling application.

`device_list_for_application` is the one place that decides which devices an application may see:
the devices linked to it (AppLink) that still have an owner. Every endpoint starts from it, so a
device the application may not see is a 404 everywhere, whether it exists or not.
"""

from datetime import timedelta

from django.db.models import F, Q, Subquery
from django.utils import timezone

from apps.models import LINK_EVENTS, Application, AppLink
from devices.models import Command, Device, DeviceEvent, Reading
from portal.errors import NotFound

EVENTS_DEFAULT_WINDOW = timedelta(hours=24)

DEVICE_NOT_FOUND = "No device with this id is linked to your application."
COMMAND_NOT_FOUND = "No command with this id was sent by your application to this device."


def device_list_for_application(application: Application):
    """Every device `application` may see: linked to it, and owned (a released device is nobody's)."""
    return Device.objects.filter(app_links__application=application, owner__isnull=False)


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


def reading_list_for_device(application: Application, device: Device, *, since=None, until=None):
    """The device's readings in [since, until) recorded since it was linked to `application`; served
    by the reading_device_time index. As with events, the link bounds what the application reads."""
    linked_at = AppLink.objects.filter(application=application, device=device).values("created_at")[:1]
    readings = Reading.objects.filter(device=device, recorded_at__gte=Subquery(linked_at))
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
    """Events of the devices `application` may see, recorded since each device was linked to it.

    The link's creation time bounds the history: an application does not read what a device did
    before it was linked. Events about a link are its own application's only, as on webhooks.
    Default window: the last 24 hours.
    """
    since = since or timezone.now() - EVENTS_DEFAULT_WINDOW
    return (
        DeviceEvent.objects.filter(device__in=device_list_for_application(application).values("pk"))
        # One filter() call, so both conditions apply to the same AppLink row.
        .filter(device__app_links__application=application, created_at__gte=F("device__app_links__created_at"))
        .filter(created_at__gte=since)
        .filter(~Q(type__in=LINK_EVENTS) | Q(data__application_id=application.app_id))
        .select_related("device__product")
    )
