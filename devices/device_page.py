"""The device page `/devices/<uuid>/` (`devices:detail`), its devices panels, the command forms' POST
and the charts' readings as CSV.

The page is the panels every app registers (`devices.panels`): devices registers its own below
(connection, latest values under the product's fields, history charts of a range, commands; the
rename button), apps and claiming theirs
in their AppConfig.ready. A panel's POST handler re-renders the page on an error through
`device_page(request, device, status=400, <its form>=form)`.
Every view starts from `devices.access.device_for` with the capability it needs (404 for anyone else).
"""

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from portal import live
from portal.errors import ApplicationError
from portal.http import client_ip

from . import access, outbox, panels, reading_charts, reading_export, selectors, sharing
from .command_queue import command_queued_message, command_send
from .forms import CommandForm, command_forms
from .product_fields import chart_fields, fields_for_product, value_text, values_shown


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


@live.not_modified_early(lambda pk: outbox.live_scope(pk))  # outside login_required: 304 before the session
@login_required
@require_GET
def device_live(request, pk):
    """The device page's live panels and its status badge, keyed by name, for `static/js/live.js`:
    304 while the device's live version is the one the browser holds (portal/live.py). Only live
    panels are rendered, so a support view is recorded by the full page alone, not by each poll."""
    device = access.device_for(request.user, pk, access.SEE)

    def fragments():
        context = panels.live_context(request, device)
        rendered = {
            panel.name: render_to_string(panel.template, context, request) for panel in context["panels"]["live"]
        }
        rendered["status"] = render_to_string("devices/_status_badge.html", {"device": device})
        return rendered

    return live.answer(request, selectors.device_live_version(device), fragments)


@login_required
@require_POST
def device_command_send(request, pk):
    device = access.device_for(request.user, pk, access.OPERATE)
    form, command = command_from_post(request, device)
    if command is None:
        return device_page(request, device, status=HTTPStatus.BAD_REQUEST, command_form=form)
    return redirect(reverse("devices:detail", args=[device.pk]) + "#commands")


def command_from_post(request, device):
    """(form, command) for a command form posted about `device` (by someone the caller let operate
    it): the command queued and the person told so, or None with the form holding why not."""
    form = CommandForm(request.POST, device=device, command=request.POST.get("name", ""))
    if not form.is_valid():
        return form, None
    try:
        command = command_send(
            device=device, name=form.cleaned_data["name"], params=form.cleaned_data["params"], sent_by_user=request.user
        )
    except ApplicationError as exc:
        form.add_service_error(exc)
        return form, None
    messages.success(request, command_queued_message(command))
    return form, command


@login_required
@require_GET
def device_readings_csv(request, pk):
    """The readings of the range the charts show (`?range=`), as a CSV download, streamed."""
    device = access.device_for(request.user, pk, access.SEE)
    if access.role_of(request.user, device) == access.SUPPORT:
        # Support staff's every look under a grant is recorded for the owner, this one too.
        sharing.support_view_record(devices=[device], staff=request.user, what="Readings CSV", ip=client_ip(request))
    window = reading_charts.chart_window(request.GET.get("range"), timezone.now())
    columns = reading_export.readings_csv_columns(fields_for_product(device.product), device.values)
    readings = selectors.readings_in_range(device, since=window.since, until=window.until)
    response = StreamingHttpResponse(
        reading_export.readings_csv_lines(readings, columns), content_type="text/csv; charset=utf-8"
    )
    filename = reading_export.readings_csv_filename(device, window.key)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- the panels of devices (registered in DevicesConfig.ready) ----------------------------------


def values_context(request, device, **overrides):
    # Declared fields first, in the product's order; keys nobody declared raw, below them.
    fields, other_values = values_shown(fields_for_product(device.product), device.values)
    return {"fields": fields, "values": other_values}


def charts_context(request, device, **overrides):
    # The range comes from the link the owner followed (?range=7d): the switch works without JS.
    window = reading_charts.chart_window(request.GET.get("range"), timezone.now())
    fields = chart_fields(fields_for_product(device.product), device.values, limit=reading_charts.MAX_CHARTS)
    rows = selectors.reading_buckets_for_device(
        device, keys=[field.key for field in fields], since=window.since, until=window.until,
        start=window.start, width=window.width,
    )  # fmt: skip
    charts = reading_charts.charts_from_buckets(
        fields,
        rows,
        window=window,
        # A line breaks where the device was silent longer than its product calls offline.
        gap=max(device.product.offline_after, 2 * window.width),
        tz=timezone.get_current_timezone(),
        text=value_text,
    )
    return {
        "charts": charts,
        "chart_window": window,
        "readings_csv_url": reverse("devices:readings-csv", args=[device.pk]) + f"?range={window.key}",
        "chart_ranges": [(key, words) for key, (_, words) in reading_charts.RANGES.items()],
        "chart_width": reading_charts.CHART_WIDTH,
        "chart_height": reading_charts.CHART_HEIGHT,
    }


def commands_context(request, device, **overrides):
    # One form per command the product declares; the POST above re-renders with its bound form.
    forms = []
    if access.may(request.user, device, access.OPERATE):
        forms = command_forms(device, bound=overrides.get("command_form"))
    return {"commands": selectors.command_list_for_device(device), "command_forms": forms}

