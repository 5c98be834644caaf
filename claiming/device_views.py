"""claiming's panels of the device page (`devices:detail`) and their actions: PIN settings, reset,
transfer offer and its cancelling.

The page is devices'; these panels are registered in ClaimingConfig.ready (see `devices.panels`).
A form error re-renders the page through `devices.device_page.device_page` with the bound form.
Every view starts from `devices.access.device_for` with the capability it needs (404 for anyone else).
"""

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.selectors import app_link_list_for_device
from devices import access
from devices.device_page import device_page
from portal.errors import ApplicationError
from portal.http import client_ip

from . import selectors, services, transfers
from .forms import PinSettingsForm, TransferForm


def transfer_context(request, device, **overrides):
    return {"transfer": selectors.transfer_open_for_device(device)}


def pin_context(request, device, **overrides):
    form = overrides.get("pin_form")  # the POST below re-renders with its bound form
    if form is None:
        has_pin = bool(device.pin_digest)
        form = PinSettingsForm(initial={"claimable": device.claimable and has_pin}, has_pin=has_pin)
    return {"pin_form": form}


def history_context(request, device, **overrides):
    return {"history": selectors.ownership_history_for_device(device, viewer=request.user)}


@login_required
@require_POST
def device_pin(request, pk):
    device = access.device_for(request.user, pk, access.MANAGE)
    form = PinSettingsForm(request.POST, has_pin=bool(device.pin_digest))
    if form.is_valid():
        try:
            services.device_pin_set(
                device=device,
                pin=form.cleaned_data["pin"],
                claimable=form.cleaned_data["claimable"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ApplicationError as exc:
            form.add_error("pin" if "pin" in exc.fields else None, exc.message)
        else:
            if device.claimable:
                messages.success(
                    request, "PIN claiming is on: whoever enters the serial number and PIN gets the device."
                )
            else:
                messages.success(request, "PIN claiming is off.")
            return redirect(reverse("devices:detail", args=[device.pk]) + "#pin")
    return device_page(request, device, status=HTTPStatus.BAD_REQUEST, pin_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def device_reset(request, pk):
    """Reset ownership (seed 000), after a confirmation page."""
    device = access.device_for(request.user, pk, access.MANAGE)
    if request.method == "POST":
        try:
            services.device_release(device=device, actor=request.user, ip=client_ip(request))
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("devices:detail", pk=device.pk)
        messages.success(request, f"{device.display_name} is no longer yours. Its claim code still works.")
        return redirect("devices:list")
    context = {"device": device, "app_links": app_link_list_for_device(device)}
    return render(request, "claiming/device_reset.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def device_transfer(request, pk):
    device = access.device_for(request.user, pk, access.MANAGE)
    form = TransferForm(request.POST or None)
    status, retry_after = HTTPStatus.OK, None
    if request.method == "POST":
        if form.is_valid():
            try:
                transfer, _token = transfers.transfer_offer(
                    device=device, to_email=form.cleaned_data["to_email"], actor=request.user, ip=client_ip(request)
                )
            except ApplicationError as exc:
                form.add_error("to_email" if "to_email" in exc.fields else None, exc.message)
                status = exc.status
                retry_after = getattr(exc, "retry_after", None)
            else:
                messages.success(
                    request,
                    f"We emailed {transfer.to_email} a link to accept {device.display_name}. "
                    f"It works for {transfers.TRANSFER_DAYS} days; the device stays yours until then.",
                )
                return redirect("devices:detail", pk=device.pk)
        else:
            status = HTTPStatus.BAD_REQUEST
    context = {"device": device, "form": form, "transfer": selectors.transfer_open_for_device(device)}
    response = render(request, "claiming/device_transfer.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@login_required
@require_POST
def transfer_cancel(request, pk):
    device = access.device_for(request.user, pk, access.MANAGE)
    transfer = selectors.transfer_open_for_device(device)
    if transfer is None:
        messages.info(request, "There is no open transfer for this device.")
    else:
        try:
            transfers.transfer_cancel(transfer=transfer, actor=request.user, ip=client_ip(request))
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Transfer cancelled. The link in the email no longer works.")
    return redirect("devices:detail", pk=device.pk)
