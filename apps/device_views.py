"""The applications panel of the device page (`devices:detail`) and its "Add to app" POST.

The page is devices'; this panel is registered in AppsConfig.ready (see `devices.panels`). Unlinking
is the application page's own action (`apps:device-unlink`), which comes back here with `next`.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from devices import access
from portal.errors import ApplicationError

from . import selectors
from .services.links import device_link


def applications_context(request, device, **overrides):
    app_links = selectors.app_link_list_for_device(device)
    linked_ids = {link.application_id for link in app_links}
    applications = selectors.application_list_for_owner(request.user).order_by("name")
    return {
        "app_links": app_links,
        "linkable_apps": [app for app in applications if app.pk not in linked_ids],
    }


@login_required
@require_POST
def device_app_link(request, pk):
    """ "Add to app" on the device page: one select, so the application is a field, not a URL."""
    device = access.device_for(request.user, pk, access.MANAGE)
    back = reverse("devices:detail", args=[device.pk]) + "#apps"
    try:
        application = selectors.application_get_for_owner(request.user, request.POST.get("application", ""))
        device_link(device=device, application=application, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{device.display_name} is linked to {application.name}.")
    return redirect(back)
