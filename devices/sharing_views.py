"""Sharing pages: the invitation link emailed to an invited person (docs/sharing.md)."""

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from portal.errors import ApplicationError
from portal.http import client_ip

from . import sharing


def _device_url(device):
    return reverse("claiming:device", args=[device.pk])


# --- the invitation link -----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def invitation_respond(request, token):
    """The invited person's page behind the emailed link: what is shared, ACCEPT or DECLINE.

    Behind login, so a visitor goes through log-in or sign-up and comes back here (`next`, carried
    through email verification by claiming.adapter, as for the QR claim and transfers)."""
    try:
        invitation = sharing.invitation_get_by_token(token=token)
    except ApplicationError as exc:
        return render(request, "devices/invitation_invalid.html", {"message": exc.message}, status=exc.status)
    error, status = None, HTTPStatus.OK
    if request.method == "POST":
        ip = client_ip(request)
        try:
            if request.POST.get("answer") == "decline":
                sharing.invitation_decline(token=token, user=request.user, ip=ip)
                messages.info(request, "Invitation declined.")
                return redirect("devices:list")
            share = sharing.invitation_accept(token=token, user=request.user, ip=ip)
        except ApplicationError as exc:
            error, status = exc.message, exc.status
        else:
            # The product and serial: the owner's nickname is text of theirs, which an invitation never carries.
            device = invitation.device
            messages.success(request, f"{device.product.name} {device.serial} is shared with you now.")
            return redirect(_device_url(share.device))
    context = {"invitation": invitation, "device": invitation.device, "error": error}
    return render(request, "devices/invitation.html", context, status=status)
