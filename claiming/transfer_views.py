"""The recipient's side of a transfer: the page behind the emailed link, and ACCEPT."""

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal.errors import ApplicationError
from portal.http import client_ip

from . import transfers


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
            return redirect("devices:detail", pk=device.pk)
    context = {"transfer": transfer, "device": transfer.device, "error": error}
    return render(request, "claiming/transfer_accept.html", context, status=status)
