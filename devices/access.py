"""Who may see or act on a device: the one module that decides (DESIGN.md, "Access: one module decides").

It answers three questions, and every page, API endpoint, service, task, email and admin check asks it
rather than filtering devices by their owner itself (`tests/hardening/test_access_module.py` fails on a
new device filter by user outside this module):

- which devices a user may see, or may act on with a capability: `devices_visible_to(user, capability)`,
  one device for a user: `device_for(user, pk, capability)`, and whether a device a caller already holds
  is theirs to act on: `may(user, device, capability)`; with `role_of(user, device)` (and
  `devices_with_roles`) saying in which role, for display;
- who hears about a device (status emails): `recipients_of(devices)`;
- where the history visible to a person or an application starts: `history_start_for_user(device)`,
  `history_start_for_application(application, device)`, applied with `history_since(...)`.

Capabilities and roles (docs/sharing.md):

| capability | owner | operator | viewer | support under a live grant |
|---|---|---|---|---|
| `SEE`: the device, its status, values, history, commands sent | yes | yes | yes | yes |
| `OPERATE`: send commands | yes | yes | no | only if the grant allows commands |
| `MANAGE`: rename, link applications, PIN, reset, transfer, share | yes | no | no | no |

Operators and viewers come from a `Share` (an accepted invitation). Support is a staff member with
`SUPPORT_PERMISSION` while the owner's `SupportGrant` is live: not ended and `ends_at` still ahead,
decided in the query itself, so an expired grant gives nothing even before the beat task ends it.
Staff see owners in the admin only with `OWNER_PERMISSION`, checked through `may_see_owners`.

The rule for refusals: a user who cannot SEE a device gets 404, whether it exists or not (existence
does not leak); a user who can SEE it but lacks the capability gets 403 with a short human message
("Only the owner of this device can …"), raised by `device_for` as `CapabilityDenied` and shown on
`templates/403.html`.

Every query here is one statement with subqueries, never a join to shares, so there are no duplicate
rows whatever the number of shares: for a list, `id IN (<the owner's devices> UNION ALL <the person's
shares> …)`, which reads only that person's index ranges; for one device and for each row's role,
`EXISTS (…)` on that row.
"""

from django.db.models import Case, CharField, Exists, OuterRef, Q, Subquery, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from portal.errors import Refused

from .models import Device, Share, ShareRole, SupportGrant

SEE = "see"
OPERATE = "operate"
MANAGE = "manage"
CAPABILITIES = (SEE, OPERATE, MANAGE)

OWNER = "owner"
OPERATOR = ShareRole.OPERATOR.value
VIEWER = ShareRole.VIEWER.value
SUPPORT = "support"
ROLES = (OWNER, OPERATOR, VIEWER, SUPPORT)

# The admin permission to see who owns a device (and what would name them: addresses, IPs).
OWNER_PERMISSION = "devices.view_device_owner"
# The maker's support staff: a device whose owner granted support access, while the grant lasts.
SUPPORT_PERMISSION = "devices.support_device"

# What a person who can see a device but lacks a capability is told (403).
DENIED_MESSAGES = {
    OPERATE: "Only the owner of this device, and people it is shared with as operators, can send it commands.",
    MANAGE: "Only the owner of this device can change its settings, link it to applications, reset, transfer "
    "or share it.",
}


class CapabilityDenied(Refused):
    """The user may see the device but not act on it this way: 403, with a message safe to show."""


def _check(capability):
    if capability not in CAPABILITIES:
        raise ValueError(f"Unknown capability {capability!r}; one of {CAPABILITIES}.")


def _signed_in(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False)


def is_support(user) -> bool:
    """Whether `user` is the maker's support staff (staff with SUPPORT_PERMISSION). Asked only of
    staff, so an ordinary user's pages never pay the permission queries."""
    return _signed_in(user) and user.is_staff and user.is_active and user.has_perm(SUPPORT_PERMISSION)


def _shared(user, roles=None):
    shares = Share.objects.filter(device=OuterRef("pk"), user=user)
    if roles is not None:
        shares = shares.filter(role__in=roles)
    return Exists(shares)


def live_grants(*, now=None):
    """Support grants live now: not ended and ends_at ahead (also before the beat task ends them)."""
    return SupportGrant.objects.filter(ended_at__isnull=True, ends_at__gt=now or timezone.now())


def _granted(*, commands=False):
    grants = live_grants().filter(device=OuterRef("pk"))
    if commands:
        grants = grants.filter(allow_commands=True)
    return Exists(grants)


def _roles_for(capability):
    return None if capability == SEE else [ShareRole.OPERATOR]


def _condition(user, capability, *, include_support=True):
    """Whether one device row passes, as EXISTS subqueries: cheap for one device (device_for)."""
    if capability == MANAGE:
        return Q(owner=user)
    condition = Q(owner=user) | Q(_shared(user, _roles_for(capability)))
    if include_support and is_support(user):
        condition |= Q(_granted(commands=capability == OPERATE))
    return condition


def _ids(user, capability, *, include_support=True):
    """The ids of the devices that pass, as one UNION ALL subquery of index ranges (the owner's
    devices, the person's shares, live grants for support): cheap for a list. A condition with OR
    would make the database read every device of the portal, whatever the person's own number."""
    # No ORDER BY in the parts of a compound statement (Device and SupportGrant have a default one).
    owned = Device.objects.filter(owner=user).order_by().values("pk")
    shares = Share.objects.filter(user=user)
    if roles := _roles_for(capability):
        shares = shares.filter(role__in=roles)
    parts = [shares.order_by().values("device_id")]
    if include_support and is_support(user):
        grants = live_grants().filter(allow_commands=True) if capability == OPERATE else live_grants()
        parts.append(grants.order_by().values("device_id"))
    return owned.union(*parts, all=True)


def devices_visible_to(user, capability=SEE, *, include_support=True):
    """Every device `user` may act on with `capability`: MANAGE, the ones they own; OPERATE, also
    those shared with them as operator and, for support staff, those under a live grant allowing
    commands; SEE, also every share and every live grant.

    `include_support=False` leaves out what a support grant gives: a person's own device list shows
    what they own and what is shared with them; support staff see granted devices on the support
    page, where each view is recorded for the owner. A queryset, one statement whose `id IN (…)`
    subquery reads only the person's own rows and holds no duplicates, so list pages compose it
    (sorting, paging, counting on top)."""
    _check(capability)
    if not _signed_in(user):
        return Device.objects.none()
    if capability == MANAGE:
        return Device.objects.filter(owner=user)
    return Device.objects.filter(pk__in=_ids(user, capability, include_support=include_support))


def devices_under_support(user, capability=SEE):
    """The devices support staff `user` may act on under a live grant (OPERATE: grants allowing
    commands); none for anyone else. What the support page lists."""
    _check(capability)
    if capability == MANAGE or not is_support(user):
        return Device.objects.none()
    return Device.objects.filter(_granted(commands=capability == OPERATE))


def _role_expression(user, *, include_support=True):
    whens = [
        When(owner=user, then=Value(OWNER)),
        When(_shared(user, [ShareRole.OPERATOR]), then=Value(OPERATOR)),
        When(_shared(user, [ShareRole.VIEWER]), then=Value(VIEWER)),
    ]
    if include_support and is_support(user):
        whens.append(When(_granted(), then=Value(SUPPORT)))
    return Case(*whens, default=Value(None), output_field=CharField())


def devices_with_roles(user, *, include_support=True):
    """`devices_visible_to(user, SEE)` with `access_role` on each row (owner, operator, viewer,
    support), in the same one statement: the device list says "shared by …" with the role (EXISTS
    subqueries, evaluated only for the rows of the page)."""
    if not _signed_in(user):
        return Device.objects.none()
    return devices_visible_to(user, SEE, include_support=include_support).annotate(
        access_role=_role_expression(user, include_support=include_support)
    )


def _may_role(role, capability, support_commands) -> bool:
    if role == OWNER:
        return True
    if capability == SEE:
        return role is not None
    if capability == OPERATE:
        return role == OPERATOR or (role == SUPPORT and support_commands)
    return False


def _one(user):
    """The devices `user` may see, each with its role, as a per-row condition: for one device."""
    return (
        Device.objects.filter(_condition(user, SEE))
        .annotate(access_role=_role_expression(user))
        .select_related("product")
    )


def device_for(user, pk, capability=SEE) -> Device:
    """The device with `pk` if `user` may act on it with `capability`, with `access_role` set.

    Http404 when they cannot see it, whether it exists or not; CapabilityDenied (403, with a message)
    when they see it but lack the capability. One query."""
    _check(capability)
    if not _signed_in(user):
        raise Http404()
    queryset = _one(user)
    if is_support(user):
        queryset = queryset.annotate(access_support_commands=_granted(commands=True))
    device = get_object_or_404(queryset, pk=pk)
    if not _may_role(device.access_role, capability, getattr(device, "access_support_commands", False)):
        raise CapabilityDenied(DENIED_MESSAGES[capability])
    device.access_role_of = user.pk  # whose role access_role is (may() answers from it)
    return device


def role_of(user, device) -> str | None:
    """In which role `user` may see `device`: "owner", "operator", "viewer", "support", or None.
    No query for the owner, or for a device `device_for(user, ...)` returned for this same user (a
    role annotated for someone else is never taken for theirs)."""
    if not _signed_in(user) or device is None:
        return None
    if device.owner_id is not None and device.owner_id == user.pk:
        return OWNER
    if getattr(device, "access_role_of", None) == user.pk:  # from device_for(user, ...): no query
        return device.access_role
    return _one(user).filter(pk=device.pk).values_list("access_role", flat=True).first()


def may(user, device, capability=SEE) -> bool:
    """Whether `user` may act on `device` (already in hand) with `capability`; no query for its
    owner or for a device `device_for(user, ...)` returned, one for anyone else."""
    _check(capability)
    if not _signed_in(user):
        return False
    if device.owner_id is not None and device.owner_id == user.pk:
        return True
    if capability == MANAGE:
        return False
    if getattr(device, "access_role_of", None) == user.pk:  # from device_for(user, ...): no query
        return _may_role(device.access_role, capability, getattr(device, "access_support_commands", False))
    return Device.objects.filter(_condition(user, capability), pk=device.pk).exists()


def devices_owned():
    """Every device somebody owns (an application sees only those of its linked devices: a released
    device is nobody's)."""
    return Device.objects.filter(owner__isnull=False)


def recipients_of(devices) -> dict:
    """Who may hear about each of `devices` (status emails): {device id: (owner id, [ids of the
    people it is shared with])}; a device nobody owns is left out. Whether each of them wants the
    email is their own choice (devices.notifications). One query for any number of devices."""
    owned = {device.pk: device.owner_id for device in devices if device.owner_id is not None}
    shared = {device_id: [] for device_id in owned}
    for device_id, user_id in Share.objects.filter(device_id__in=list(owned)).values_list("device_id", "user_id"):
        shared[device_id].append(user_id)
    return {device_id: (owner_id, shared[device_id]) for device_id, owner_id in owned.items()}


def owner_id_of(device):
    """The owner of `device` (None: nobody): the person a status email's state is kept for."""
    return device.owner_id


def history_start_for_user(device):
    """Where the history a person sees of `device` starts: the current ownership's start (what it
    reported or was told under an earlier owner is theirs), for its owner and for the people it is
    shared with alike (a change of owner ends every share). None: no bound."""
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
    "OPERATOR",
    "OWNER",
    "OWNER_PERMISSION",
    "ROLES",
    "SEE",
    "SUPPORT",
    "SUPPORT_PERMISSION",
    "VIEWER",
    "CapabilityDenied",
    "device_for",
    "devices_owned",
    "devices_under_support",
    "devices_visible_to",
    "devices_with_roles",
    "history_since",
    "history_start_for_application",
    "history_start_for_user",
    "is_support",
    "live_grants",
    "may",
    "may_see_owners",
    "owner_id_of",
    "recipients_of",
    "role_of",
]
