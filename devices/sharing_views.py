"""Sharing pages: the invitation link, the device page's sharing panels and their actions, and
sharing several devices from the device list (docs/sharing.md).

The device page's sharing panels are include templates under `devices/templates/devices/panels/`,
each with a context function here, registered in `devices/apps.py` for the roles they are for
(`devices/panels.py`). Every action starts from `devices.access.device_for` with the capability
it needs (404 for who cannot see the device, 403 with a message for who sees it but may not act), calls
one service of `devices.sharing` and goes back to the device page through `_back_to_device`.
"""

import uuid
from datetime import timedelta
from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from portal.errors import ApplicationError, Conflict, NotFound
from portal.http import client_ip

from . import access, selectors, sharing
from .forms import InviteForm, ShareRoleForm, SupportGrantForm
from .models import Invitation, Share, ShareRole, SupportGrant


def _device_url(device):
    return reverse("devices:detail", args=[device.pk])


def _back_to_device(device, anchor="sharing"):
    """Back to the device page, at the sharing panels: every panel action ends here."""
    return redirect(_device_url(device) + f"#{anchor}")


def _refused(request, exc: ApplicationError, *, back):
    """A service's refusal on a page of its own, with its status (400, 403, 404, 409, 429)."""
    response = render(
        request, "devices/sharing_refused.html", {"message": exc.message, "back": back}, status=exc.status
    )
    if getattr(exc, "retry_after", None):
        response["Retry-After"] = str(exc.retry_after)
    return response


# --- the device page's panels ------------------------------------------------------------------


def invite_panel_context(request, device, **overrides) -> dict:
    """The owner's invitation form (email + role)."""
    return {"invite_form": InviteForm()}


def access_panel_context(request, device, **overrides) -> dict:
    """Who has access (owner only): each share with its role, a role change and a revoke."""
    return {"shares": selectors.share_list_for_device(device), "roles": ShareRole.choices}


def invitations_panel_context(request, device, **overrides) -> dict:
    """The owner's pending invitations, each with a cancel button."""
    return {"invitations": selectors.invitation_list_pending_for_device(device)}


def support_panel_context(request, device, **overrides) -> dict:
    """The owner's support grant: the live one (and its end), or the form to start one."""
    return {"grant": selectors.support_grant_live_for_device(device), "grant_form": SupportGrantForm()}


def audit_panel_context(request, device, **overrides) -> dict:
    """Every change of access and every view by support since the owner got the device (owner only)."""
    return {"events": selectors.access_event_list_for_device(device, viewer=request.user)}


def my_access_panel_context(request, device, **overrides) -> dict:
    """For a person the device is shared with: their role, whose device it is, status emails, leave."""
    return {
        "role": ShareRole(access.role_of(request.user, device)).label,
        "owner_email": device.owner.email if device.owner_id else "",
    }


def support_notice_panel_context(request, device, **overrides) -> dict:
    """For support staff looking at the device under a grant: says the owner sees this view, and
    records it (a SupportView and an audit entry) as the support page does."""
    sharing.support_view_record(devices=[device], staff=request.user, what="Device page", ip=client_ip(request))
    return {"grant": selectors.support_grant_live_for_device(device)}


# --- the panels' actions -----------------------------------------------------------------------


@login_required
@require_POST
def share_invite(request, pk):
    """The owner invites an address to this device."""
    device = access.device_for(request.user, pk, access.MANAGE)
    form = InviteForm(request.POST)
    if not form.is_valid():
        error = next(iter(form.errors.values()))[0]
        return _refused(request, ApplicationError(error), back=_device_url(device))
    try:
        sharing.invitations_send(devices=[device], actor=request.user, ip=client_ip(request), **form.cleaned_data)
    except ApplicationError as exc:
        return _refused(request, exc, back=_device_url(device))
    messages.success(
        request,
        f"We emailed {form.cleaned_data['email']} an invitation. It works for {sharing.INVITATION_DAYS} days.",
    )
    return _back_to_device(device)


def _devices_from_post(request):
    """The devices ticked on the device list, each one the user's to share. The rule of
    `access.device_for` holds for each: one they cannot see is a 404 (NotFound), one they see but do
    not own a 403 with its message."""
    try:
        ids = {uuid.UUID(value) for value in request.POST.getlist("device")}
    except ValueError:
        raise NotFound() from None
    devices = list(access.devices_with_roles(request.user).filter(pk__in=ids))
    if len(devices) != len(ids):
        raise NotFound()
    if any(device.access_role != access.OWNER for device in devices):
        raise access.CapabilityDenied(access.DENIED_MESSAGES[access.MANAGE])
    return devices


@login_required
@require_POST
def share_selected(request):
    """"Share selected" on the device list: one invitation email for every ticked device."""
    back = reverse("devices:list")
    form = InviteForm(request.POST)
    try:
        devices = _devices_from_post(request)
        if not form.is_valid():
            raise ApplicationError(next(iter(form.errors.values()))[0])
        sharing.invitations_send(devices=devices, actor=request.user, ip=client_ip(request), **form.cleaned_data)
    except ApplicationError as exc:
        return _refused(request, exc, back=back)
    shown = devices[0].display_name if len(devices) == 1 else f"{len(devices)} devices"
    messages.success(request, f"We emailed {form.cleaned_data['email']} an invitation to {shown}.")
    return redirect(back)


@login_required
@require_POST
def invitation_cancel(request, pk, invitation_id):
    device = access.device_for(request.user, pk, access.MANAGE)
    invitation = get_object_or_404(Invitation, pk=invitation_id, device=device)
    try:
        sharing.invitation_cancel(invitation=invitation, actor=request.user, ip=client_ip(request))
    except ApplicationError as exc:
        return _refused(request, exc, back=_device_url(device))
    messages.success(request, f"Invitation of {invitation.email} cancelled. Its link no longer works.")
    return _back_to_device(device)


@login_required
@require_POST
def share_role_change(request, pk, share_id):
    device = access.device_for(request.user, pk, access.MANAGE)
    share = get_object_or_404(Share.objects.select_related("user"), pk=share_id, device=device)
    form = ShareRoleForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError("Choose viewer or operator.")
        role = form.cleaned_data["role"]
        sharing.share_role_change(share=share, role=role, actor=request.user, ip=client_ip(request))
    except ApplicationError as exc:
        return _refused(request, exc, back=_device_url(device))
    messages.success(request, f"{share.user.email} is now {share.get_role_display().lower()} of this device.")
    return _back_to_device(device)


@login_required
@require_POST
def share_revoke(request, pk, share_id):
    device = access.device_for(request.user, pk, access.MANAGE)
    share = get_object_or_404(Share.objects.select_related("user"), pk=share_id, device=device)
    sharing.share_revoke(share=share, actor=request.user, ip=client_ip(request))
    messages.success(request, f"{share.user.email} no longer has access to this device.")
    return _back_to_device(device)


@login_required
@require_POST
def share_leave(request, pk):
    """A person gives up a device shared with them; back to their list, where it is gone."""
    device = access.device_for(request.user, pk, access.SEE)
    share = selectors.share_for(request.user, device)
    if share is None:
        # Its owner (or support) sees the device but has no share to leave: a conflict, not a secret.
        refusal = Conflict("This device is not shared with you, so there is nothing to leave.", code="not_shared")
        return _refused(request, refusal, back=_device_url(device))
    sharing.share_leave(share=share, user=request.user, ip=client_ip(request))
    messages.success(request, f"You left {device.display_name}.")
    return redirect("devices:list")


@login_required
@require_POST
def support_grant_start(request, pk):
    device = access.device_for(request.user, pk, access.MANAGE)
    form = SupportGrantForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError("Choose a period from 1 hour to 30 days.")
        grant = sharing.support_grant_start(
            device=device,
            duration=timedelta(hours=form.cleaned_data["hours"]),
            allow_commands=form.cleaned_data["allow_commands"],
            actor=request.user,
            ip=client_ip(request),
        )
    except ApplicationError as exc:
        return _refused(request, exc, back=_device_url(device))
    messages.success(request, f"The maker's support can see this device until {grant.ends_at:%d %b %Y, %H:%M}.")
    return _back_to_device(device)


@login_required
@require_POST
def support_grant_end(request, pk):
    device = access.device_for(request.user, pk, access.MANAGE)
    grant = SupportGrant.objects.filter(device=device, ended_at__isnull=True).first()
    try:
        if grant is None:
            raise NotFound("There is no support access to end.")
        sharing.support_grant_end(grant=grant, actor=request.user, ip=client_ip(request))
    except ApplicationError as exc:
        return _refused(request, exc, back=_device_url(device))
    messages.success(request, "Support access ended.")
    return _back_to_device(device)


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
