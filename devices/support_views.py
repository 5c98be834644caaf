"""The maker's support page (/support/): only devices whose owner granted support access, while the
grant lasts, with the owner's email, values, recent history and commands (docs/sharing.md).

Only staff with `devices.support_device` (access.SUPPORT_PERMISSION) open it: anyone else who is not
staff gets 404 (the page is not theirs to know of), staff without the permission 403 with a message.
Which devices it shows is `devices.access.devices_under_support`; every view is recorded for the owner
(`devices.sharing.support_view_record`); a command goes through the command service, and only where
the owner allowed commands. Without a grant, staff see what they always saw (the admin, no owners).
"""

from http import HTTPStatus

from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.errors import Refused
from portal.http import client_ip

from . import access, device_page, selectors, sharing
from .forms import command_forms
from .reading_charts import HEIGHT as CHART_HEIGHT
from .reading_charts import WIDTH as CHART_WIDTH
from .reading_charts import series_from_readings

LIST_LIMIT = 200
NO_COMMANDS = "The owner of this device did not allow support to send it commands."


def _require_support(user) -> None:
    if not user.is_staff:
        raise Http404()
    if not access.is_support(user):
        raise Refused("Only support staff with the permission to support devices can open this page.")


def _devices(user):
    """The devices under a live grant, each with its grant's end and whether it allows commands."""
    grant = access.live_grants().filter(device=OuterRef("pk")).order_by("-created_at")
    return (
        access.devices_under_support(user)
        .select_related("product", "owner")
        .annotate(
            grant_ends_at=Subquery(grant.values("ends_at")[:1]),
            grant_allows_commands=Subquery(grant.values("allow_commands")[:1]),
        )
    )


@login_required
@require_GET
def support_list(request):
    """Every device whose owner granted support access now, soonest end first."""
    _require_support(request.user)
    devices = list(_devices(request.user).order_by("grant_ends_at", "serial")[:LIST_LIMIT])
    sharing.support_view_record(devices=devices, staff=request.user, what="Support list", ip=client_ip(request))
    return render(request, "devices/support_list.html", {"devices": devices, "limit": LIST_LIMIT})


def _device_page(request, device, *, command_form=None, status=HTTPStatus.OK):
    readings = selectors.reading_list_for_device(device)
    context = {
        "device": device,
        "values": sorted((device.values or {}).items()),
        "series": series_from_readings(readings),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "commands": selectors.command_list_for_device(device),
        "command_forms": command_forms(device, bound=command_form) if device.grant_allows_commands else [],
    }
    return render(request, "devices/support_device.html", context, status=status)


@login_required
@require_GET
def support_device(request, pk):
    """One granted device: owner's email, values, history, commands (404 without a live grant)."""
    _require_support(request.user)
    device = get_object_or_404(_devices(request.user), pk=pk)
    sharing.support_view_record(devices=[device], staff=request.user, what="Device details", ip=client_ip(request))
    return _device_page(request, device)


@login_required
@require_POST
def support_command_send(request, pk):
    """Support sends a command, where the owner's grant allows it (403 with a message otherwise)."""
    _require_support(request.user)
    device = get_object_or_404(_devices(request.user), pk=pk)
    if not access.devices_under_support(request.user, access.OPERATE).filter(pk=device.pk).exists():
        raise Refused(NO_COMMANDS)
    form, command = device_page.command_from_post(request, device)
    if command is not None:
        what = f"Sent the command {command.name}"
        sharing.support_view_record(devices=[device], staff=request.user, what=what, ip=client_ip(request))
        return redirect("support:device", pk=device.pk)
    return _device_page(request, device, command_form=form, status=HTTPStatus.BAD_REQUEST)
