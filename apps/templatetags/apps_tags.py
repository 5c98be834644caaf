"""Pieces of the applications app that other apps' pages show (the device page's "Add to app")."""

from django import template

from ..selectors import applications_linkable_to_device

register = template.Library()


@register.inclusion_tag("apps/_device_link_form.html", takes_context=True)
def device_link_form(context, device):
    """The "Add to app" form for a device page: the applications its owner may still link it to."""
    request = context["request"]
    return {
        "device": device,
        "applications": list(applications_linkable_to_device(request.user, device)),
        "next": request.get_full_path() + "#apps",
        "csrf_token": context.get("csrf_token"),
    }
