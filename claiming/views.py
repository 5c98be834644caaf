"""The owner's claim form, the QR short link, and the device page with its ownership actions.

The device page shows data from devices, apps and claiming, so this, the highest app, serves it.
Every device view starts from `devices.access.device_for` with the capability it needs (404 for anyone else).
"""

from http import HTTPStatus
from urllib.parse import urlencode

from allauth.account.models import EmailAddress
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.selectors import application_get_for_owner, application_list_for_owner
from apps.services.links import device_link
from devices import access, codes
from devices.command_queue import command_send
from devices.reading_charts import HEIGHT as CHART_HEIGHT
from devices.reading_charts import WIDTH as CHART_WIDTH
from devices.reading_charts import series_from_readings
from devices.selectors import reading_list_for_device
from portal.errors import ApplicationError, Throttled
from portal.http import client_ip

from . import selectors, services, transfers
from .forms import ClaimCodeForm, ClaimPinForm, CommandForm, PinSettingsForm, TransferForm


def _throttled(request, exc: Throttled):
    minutes = max(1, round(exc.retry_after / 60))
    response = render(
        request,
        "claiming/throttled.html",
        {"message": exc.message, "minutes": minutes},
        status=HTTPStatus.TOO_MANY_REQUESTS,
    )
    response["Retry-After"] = str(exc.retry_after)
    return response


def _applications(user):
    return list(application_list_for_owner(user).order_by("name"))


# --- claim -------------------------------------------------------------------------------------


@require_GET
def qr_redirect(request, code):
    """The permanent short link printed in a label's QR: on to the claim form, filled in.

    Not behind login itself, so the code survives as `next` through log-in or sign-up.
    """
    normal = codes.normalize(code)
    shown = codes.display(normal) if len(normal) == codes.CODE_LENGTH else normal
    return redirect(reverse("claiming:claim") + "?" + urlencode({"code": shown}))


def _code_step(request, *, code, applications, application=None):
    """Looks a code up (a counted guess) and prepares the form listing the devices it covers.

    Returns the form and an error message (the code is valid but nothing is left to claim).
    """
    initial = {"code": code, "application": application.app_id if application else ""}
    form = ClaimCodeForm(applications=applications, initial=initial)
    _claim_code, devices = services.claim_code_lookup(user=request.user, code=code, ip=client_ip(request))
    unowned = services.devices_open_to(user=request.user, devices=devices)
    if not unowned:
        if devices and all(access.may(request.user, device, access.MANAGE) for device in devices):
            return form, "You already own the devices this code covers."
        return form, services.ALREADY_CLAIMED_MESSAGE
    form.set_devices(unowned)
    form.initial["picked"] = True
    return form, None


def _claim_page(request, *, code_form, pin_form, applications, active="code", error=None, status=HTTPStatus.OK):
    context = {
        "code_form": code_form,
        "pin_form": pin_form,
        "active": active,
        "error": error,
        "verified": EmailAddress.objects.filter(user=request.user, verified=True).exists(),
        "has_applications": bool(applications),
    }
    return render(request, "claiming/claim.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def claim(request):
    """Claim by code (with the devices of a batch code to tick) or by serial number + PIN.

    A code is looked up first (GET ?code=, or the first press of CLAIM): a code covering one
    device claims it at once; a batch code lists its unowned devices, all ticked, to confirm.
    """
    applications = _applications(request.user)
    code_form = ClaimCodeForm(applications=applications, initial={"code": request.GET.get("code", "")})
    pin_form = ClaimPinForm(applications=applications)
    page = {"code_form": code_form, "pin_form": pin_form, "applications": applications}
    ip = client_ip(request)
    try:
        if request.method == "GET":
            if request.GET.get("code"):
                page["code_form"], error = _code_step(request, code=request.GET["code"], applications=applications)
                if error:
                    return _claim_page(request, **page, error=error, status=HTTPStatus.CONFLICT)
            return _claim_page(request, **page)

        if request.POST.get("method") == "pin":
            page["active"] = "pin"
            page["pin_form"] = pin_form = ClaimPinForm(request.POST, applications=applications)
            if not pin_form.is_valid():
                return _claim_page(request, **page, status=HTTPStatus.BAD_REQUEST)
            device = services.device_claim_by_pin(
                user=request.user,
                serial=pin_form.cleaned_data["serial"],
                pin=pin_form.cleaned_data["pin"],
                application=pin_form.cleaned_data["application"],
                ip=ip,
            )
            messages.success(request, f"{device.display_name} is yours now.")
            return redirect("devices:list")

        page["code_form"] = code_form = ClaimCodeForm(request.POST, applications=applications)
        if not code_form.is_valid():
            return _claim_page(request, **page, status=HTTPStatus.BAD_REQUEST)
        data = code_form.cleaned_data
        serials = data["serials"]
        if not data["picked"]:
            page["code_form"], error = _code_step(
                request, code=data["code"], applications=applications, application=data["application"]
            )
            if error:
                return _claim_page(request, **page, error=error, status=HTTPStatus.CONFLICT)
            if len(page["code_form"].devices) > 1:
                return _claim_page(request, **page)
            # One device: nothing to choose, so the first press of CLAIM claims it.
            serials = [page["code_form"].devices[0].serial]
        elif not serials:
            _claim_code, devices = services.claim_code_lookup(user=request.user, code=data["code"], ip=ip)
            code_form.set_devices(services.devices_open_to(user=request.user, devices=devices))
            code_form.add_error("serials", "Tick at least one device to claim.")
            return _claim_page(request, **page, status=HTTPStatus.BAD_REQUEST)
        devices = services.device_claim_by_code(
            user=request.user, code=data["code"], serials=serials, application=data["application"], ip=ip
        )
    except Throttled as exc:
        return _throttled(request, exc)
    except ApplicationError as exc:
        return _claim_page(request, **page, error=exc.message, status=exc.status)
    if len(devices) == 1:
        messages.success(request, f"{devices[0].display_name} is yours now.")
    else:
        messages.success(request, f"{len(devices)} devices are yours now.")
    return redirect("devices:list")


# --- the device page ---------------------------------------------------------------------------


def _device_context(request, device, **extra):
    readings = reading_list_for_device(device)
    app_links = selectors.app_link_list_for_device(device)
    linked_ids = {link.application_id for link in app_links}
    context = {
        "device": device,
        "values": sorted((device.values or {}).items()),
        "series": series_from_readings(readings),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "chart_from": readings[0].recorded_at if readings else None,
        "chart_to": readings[-1].recorded_at if readings else None,
        "commands": selectors.command_list_for_device(device),
        "command_form": CommandForm(device=device),
        "app_links": app_links,
        "linkable_apps": [app for app in _applications(request.user) if app.pk not in linked_ids],
        "history": selectors.ownership_history_for_device(device, viewer=request.user),
        "transfer": selectors.transfer_open_for_device(device),
        "pin_form": PinSettingsForm(
            initial={"claimable": device.claimable and bool(device.pin_digest)}, has_pin=bool(device.pin_digest)
        ),
    }
    context.update(extra)
    return context


@login_required
@require_GET
def device_detail(request, pk):
    device = access.device_for(request.user, pk, access.SEE)
    return render(request, "claiming/device_detail.html", _device_context(request, device))


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
            return redirect(reverse("claiming:device", args=[device.pk]) + "#commands")
    context = _device_context(request, device, command_form=form)
    return render(request, "claiming/device_detail.html", context, status=HTTPStatus.BAD_REQUEST)


@login_required
@require_POST
def device_app_link(request, pk):
    """ "Add to app" on the device page: one select, so the application is a field, not a URL."""
    device = access.device_for(request.user, pk, access.MANAGE)
    back = reverse("claiming:device", args=[device.pk]) + "#apps"
    try:
        application = application_get_for_owner(request.user, request.POST.get("application", ""))
        device_link(device=device, application=application, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{device.display_name} is linked to {application.name}.")
    return redirect(back)


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
            return redirect(reverse("claiming:device", args=[device.pk]) + "#pin")
    context = _device_context(request, device, pin_form=form)
    return render(request, "claiming/device_detail.html", context, status=HTTPStatus.BAD_REQUEST)


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
            return redirect("claiming:device", pk=device.pk)
        messages.success(request, f"{device.display_name} is no longer yours. Its claim code still works.")
        return redirect("devices:list")
    context = {"device": device, "app_links": selectors.app_link_list_for_device(device)}
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
                return redirect("claiming:device", pk=device.pk)
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
    return redirect("claiming:device", pk=device.pk)


@login_required
@require_http_methods(["GET", "POST"])
def transfer_accept(request, token):
    """The recipient's page behind the emailed link: what is offered, and ACCEPT."""
    try:
        transfer = transfers.transfer_get_by_token(token=token)
    except ApplicationError as exc:
        return render(request, "claiming/transfer_invalid.html", {"message": exc.message}, status=exc.status)
    error = None
    status = HTTPStatus.OK
    if request.method == "POST":
        try:
            device = transfers.transfer_accept(token=token, user=request.user, ip=client_ip(request))
        except ApplicationError as exc:
            error, status = exc.message, exc.status
        else:
            messages.success(request, f"{device.display_name} is yours now.")
            return redirect("claiming:device", pk=device.pk)
    context = {"transfer": transfer, "device": transfer.device, "error": error}
    return render(request, "claiming/transfer_accept.html", context, status=status)
