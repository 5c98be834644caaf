"""The owner's device list (with the devices shared with them, marked "shared by …"). Every view
starts from `devices.access` (through `selectors` for pages)."""

from http import HTTPStatus
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from portal import live
from portal.errors import ApplicationError

from . import access, product_fields, selectors, services
from .forms import DeviceRenameForm
from .models import DeviceStatus

PER_PAGE = 50
# Far past any fleet; a larger page number would overflow the database's OFFSET.
MAX_PAGE = 100_000
FILTER_ORDER = [DeviceStatus.ONLINE, DeviceStatus.OFFLINE, DeviceStatus.NEVER_SEEN]
SORT_LABELS = {
    "serial": "Serial number",
    "name": "Name",
    "status": "Status",
    "-last_seen": "Last seen (newest first)",
    "last_seen": "Last seen (oldest first)",
}


def _page_number(value):
    try:
        return min(max(int(value), 1), MAX_PAGE)
    except (TypeError, ValueError):
        return 1


def _list_context(request):
    """The device list's context for the query string of `request`: filter by status, sort, page;
    a fixed number of queries at any size, however many devices are shared."""
    status = request.GET.get("status", "")
    if status not in DeviceStatus.values:
        status = ""
    sort = request.GET.get("sort", "serial")
    if sort not in selectors.DEVICE_SORTS:
        sort = "serial"
    page = _page_number(request.GET.get("page"))
    devices, has_next = selectors.device_page_for_owner(
        request.user, status=status or None, sort=sort, page=page, per_page=PER_PAGE
    )
    product_fields.primary_values_attach(devices)
    counts = selectors.device_status_counts_for_owner(request.user)
    total = sum(counts.values())

    def link(**changes):
        params = {"status": status, "sort": sort if sort != "serial" else "", "page": ""}
        params.update(changes)
        query = urlencode({key: value for key, value in params.items() if value})
        return reverse("devices:list") + (f"?{query}" if query else "")

    context = {
        "devices": devices,
        # "Share selected" only when the page holds a device of the user's own to tick.
        "has_own": any(device.access_role == access.OWNER for device in devices),
        "status": status,
        "sort": sort,
        "sort_labels": SORT_LABELS,
        "page": page,
        "prev_url": link(page=page - 1 if page > 2 else "") if page > 1 else None,
        "next_url": link(page=page + 1) if has_next else None,
        "first_index": (page - 1) * PER_PAGE + 1,
        "total": total,
        "filters": [
            {"value": "", "label": "All", "count": total, "url": link(status="")},
            *(
                {"value": value, "label": DeviceStatus(value).label, "count": counts[value], "url": link(status=value)}
                for value in FILTER_ORDER
            ),
        ],
        "here": request.get_full_path(),
    }
    return context


@login_required
@require_GET
def device_list(request):
    """The owner's devices and those shared with them."""
    return render(request, "devices/list.html", _list_context(request))


# The list's regions refreshed in place (data-live in devices/list.html), each its own template.
LIST_FRAGMENTS = {"filters": "devices/_list_filters.html", "devices": "devices/_list_devices.html"}


@login_required
@require_GET
def device_list_live(request):
    """The list's filters and rows for `static/js/live.js`, for the same query string as the page:
    304 while the person's list has the version the browser holds (portal/live.py)."""

    def fragments():
        context = _list_context(request)
        # The rename forms come back to the page, not to this endpoint.
        context["here"] = reverse("devices:list") + (f"?{request.GET.urlencode()}" if request.GET else "")
        return {name: render_to_string(template, context, request) for name, template in LIST_FRAGMENTS.items()}

    return live.answer(request, selectors.device_list_live_version(request.user), fragments)


@login_required
@require_http_methods(["GET", "POST"])
def device_rename(request, pk):
    device = access.device_for(request.user, pk, access.MANAGE)
    form = DeviceRenameForm(request.POST or None, initial={"name": device.name})
    back = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    status = HTTPStatus.OK
    if request.method == "POST":
        if form.is_valid():
            try:
                services.device_rename(device=device, name=form.cleaned_data["name"])
            except ApplicationError as exc:
                form.add_error("name", exc.message)
            else:
                messages.success(request, f"Renamed to {device.display_name}.")
                return redirect(back or reverse("devices:detail", args=[device.pk]))
        status = HTTPStatus.BAD_REQUEST
    return render(request, "devices/rename.html", {"device": device, "form": form, "next": back}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def device_credentials_revoke(request, pk):
    """The owner voids the device's token and certificate; the device provisions again."""
    device = access.device_for(request.user, pk, access.MANAGE)
    if request.method == "POST":
        services.device_credentials_revoke(device=device, actor=request.user)
        messages.success(request, "Credentials revoked. The device gets new ones at its next provisioning poll.")
        return redirect(reverse("devices:detail", args=[device.pk]))
    return render(request, "devices/credentials_revoke.html", {"device": device})
