"""Reads of the integrator API, always scoped to the calling application.

`device_list_for_application` is the one place that decides which devices an application may see:
the devices linked to it (AppLink) that still have an owner. Every endpoint starts from it, so a
device the application may not see is a 404 everywhere, whether it exists or not.
"""

from datetime import timedelta

from django.utils import timezone

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
