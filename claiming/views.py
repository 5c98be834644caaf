"""The owner's claim form and the QR short link.

The device page's ownership panels and their actions are in `claiming.device_views`; the recipient's
side of a transfer in `claiming.transfer_views`.
"""

from http import HTTPStatus
from urllib.parse import urlencode

from allauth.account.models import EmailAddress
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from apps.selectors import application_list_for_owner
from devices import access, codes
from portal.errors import ApplicationError, Throttled
from portal.http import client_ip

from . import services
from .forms import ClaimCodeForm, ClaimPinForm


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
