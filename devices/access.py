"""Who may see or act on a device: the one module that decides (DESIGN.md, "Access: one module decides").

It answers three questions, and every page, API endpoint, service, task, email and admin check asks it
rather than filtering devices by their owner itself (`tests/hardening/test_access_module.py` fails on a
new device filter by user outside this module):

- which devices a user may see, or may act on with a capability: `devices_visible_to(user, capability)`,
  one device for a user: `device_for(user, pk, capability)` (Http404 otherwise, whether it exists or
  not), and whether a device a caller already holds is theirs to act on: `may(user, device, capability)`;
- who hears about a device (status emails): `recipient_id(device)`;
- where the history visible to a person or an application starts: `history_start_for_user(device)`,
  `history_start_for_application(application, device)`, applied with `history_since(...)`.

Capabilities: `SEE` (read the device and its values), `OPERATE` (send commands), `MANAGE` (link
applications, change the PIN, reset, transfer, share). Today every capability means the owner; sharing
(viewers, operators, the maker's support under a grant) will widen `SEE` and `OPERATE` here and nowhere
else. Staff see owners in the admin only with `OWNER_PERMISSION`, checked through `may_see_owners`.
"""

from django.db.models import Subquery
from django.shortcuts import get_object_or_404

from .models import Device

SEE = "see"
OPERATE = "operate"
MANAGE = "manage"
CAPABILITIES = (SEE, OPERATE, MANAGE)

# The admin permission to see who owns a device (and what would name them: addresses, IPs).
OWNER_PERMISSION = "devices.view_device_owner"


def _check(capability):
    if capability not in CAPABILITIES:
        raise ValueError(f"Unknown capability {capability!r}; one of {CAPABILITIES}.")


def devices_visible_to(user, capability=SEE):
    """Every device `user` may act on with `capability` (today, for each: the ones they own).

    A queryset, so list pages compose it into one statement (sorting, paging, counting on top)."""
    _check(capability)
    if not getattr(user, "is_authenticated", False):
        return Device.objects.none()
    return Device.objects.filter(owner=user)


def device_for(user, pk, capability=SEE) -> Device:
    """The device with `pk` if `user` may act on it with `capability`; Http404 otherwise, whether it
    exists or not."""
    return get_object_or_404(devices_visible_to(user, capability).select_related("product"), pk=pk)


def may(user, device, capability=SEE) -> bool:
    """Whether `user` may act on `device` (already in hand) with `capability`; no query today."""
    _check(capability)
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return device.owner_id is not None and device.owner_id == user.pk


def devices_owned():
    """Every device somebody owns (an application sees only those of its linked devices: a released
    device is nobody's)."""
    return Device.objects.filter(owner__isnull=False)


def recipient_id(device):
    """The user told about `device` (status emails): its owner; None for a device nobody owns."""
    return device.owner_id


def history_start_for_user(device):
    """Where the history a person sees of `device` starts: the current ownership's start (what it
    reported or was told under an earlier owner is theirs). None: no bound."""
    return device.owned_since


def history_start_for_application(application, device):
    """Where the history `application` sees of `device` starts: its link's creation (a link never
    predates the current ownership: a change of owner ends links). A subquery, so the read stays one
    statement; no link means no row passes the bound."""
    # Through the reverse relation: apps is above devices, so this module does not import it.
    return Subquery(device.app_links.filter(application=application).values("created_at")[:1])


def history_since(queryset, field, start):
    """`queryset` bounded to `field >= start` (`start` from one of the history_start_* functions)."""
    if start is None:
        return queryset
    return queryset.filter(**{f"{field}__gte": start})


def may_see_owners(user) -> bool:
    """Whether a staff member may see who owns devices in the admin."""
    return user is not None and user.has_perm(OWNER_PERMISSION)


__all__ = [
    "CAPABILITIES",
    "MANAGE",
    "OPERATE",
    "OWNER_PERMISSION",
    "SEE",
    "device_for",
    "devices_owned",
    "devices_visible_to",
    "history_since",
    "history_start_for_application",
    "history_start_for_user",
    "may",
    "may_see_owners",
    "recipient_id",
]
