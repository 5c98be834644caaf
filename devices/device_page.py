"""The device page `/devices/<uuid>/` (`devices:detail`), its devices panels, and the command form's POST.

The page is the panels every app registers (`devices.panels`): devices registers its own below
(connection, latest values, recent history, commands; the rename button), apps and claiming theirs
in their AppConfig.ready. A panel's POST handler re-renders the page on an error through
`device_page(request, device, status=400, <its form>=form)`.
Every view starts from `devices.access.device_for` with the capability it needs (404 for anyone else).
"""

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from portal.errors import ApplicationError

from . import access, panels, selectors
from .command_queue import command_send
from .forms import CommandForm
from .product_fields import fields_for_product, values_shown
from .reading_charts import HEIGHT as CHART_HEIGHT
from .reading_charts import WIDTH as CHART_WIDTH
from .reading_charts import series_from_readings


def device_page(request, device, *, status=HTTPStatus.OK, **overrides):
    """The device page of `device` (already checked through `devices.access`), with `overrides`
    replacing panels' keys: a POST handler's bound form, so its errors show where it stands."""
    context = panels.page_context(request, device, **overrides)
    return render(request, "devices/detail.html", context, status=status)


@login_required
@require_GET
def device_detail(request, pk):
    device = access.device_for(request.user, pk, access.SEE)
    return device_page(request, device)


@login_required
@require_POST
def device_command_send(request, pk):
    device = access.device_for(request.user, pk, access.OPERATE)
    form = CommandForm(request.POST, device=device)
    if form.is_valid():
        try:
            command = command_send(
                device=device,
                name=form.cleaned_data["name"],
                params=form.cleaned_data["params"],
                sent_by_user=request.user,
            )
        except ApplicationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Command “{command.name}” queued; the device gets it at its next check-in.")
            return redirect(reverse("devices:detail", args=[device.pk]) + "#commands")
    return device_page(request, device, status=HTTPStatus.BAD_REQUEST, command_form=form)


# --- the panels of devices (registered in DevicesConfig.ready) ----------------------------------


def values_context(request, device, **overrides):
    # Declared fields first, in the product's order; keys nobody declared raw, below them.
    fields, other_values = values_shown(fields_for_product(device.product), device.values)
    return {"fields": fields, "values": other_values}


def charts_context(request, device, **overrides):
    readings = selectors.reading_list_for_device(device)
    return {
        "series": series_from_readings(readings),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "chart_from": readings[0].recorded_at if readings else None,
        "chart_to": readings[-1].recorded_at if readings else None,
    }


def commands_context(request, device, **overrides):
    form = overrides.get("command_form")  # the POST above re-renders with its bound form
    if form is None and access.may(request.user, device, access.OPERATE):
        form = CommandForm(device=device)
    return {"commands": selectors.command_list_for_device(device), "command_form": form}

