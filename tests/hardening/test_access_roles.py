"""Every owner URL about a device × every role (issue 18): anonymous, a stranger, a viewer, an operator,
support staff with and without a live grant, and the owner.

The URLs come from the URL conf, walked as `test_access_matrix.py` walks it: every route with a
device's `<uuid:pk>` (and "Share selected", which names devices in its body) must have a row in
CAPABILITY below, so a new device URL cannot be forgotten. Each cell is asserted: an answer the role
may have (not 403 or 404), or the refusal the rule gives (docs/sharing.md): 404 for who cannot see
the device, 403 for who sees it but lacks the capability, a log-in redirect for anonymous; and a
refused request, GET or POST, changes nothing.
"""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.models import AppLink
from claiming import transfers
from claiming.models import OwnershipEvent, Transfer
from devices import sharing
from devices.models import (
    AccessEvent,
    Command,
    Device,
    Invitation,
    NotificationPreference,
    Share,
    SupportGrant,
    SupportView,
)
from tests.factories import ApplicationFactory

from .test_access_matrix import ALL_URLS, _is_public

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]

# What each device URL needs. SEE, OPERATE, MANAGE: the access module's capabilities; PEOPLE: SEE,
# for the people who hear about a device (status emails: not support); LEAVE: a person the device is
# shared with; SUPPORT / SUPPORT_OPERATE: the support page (staff with the permission, live grant).
SEE, OPERATE, MANAGE, PEOPLE, LEAVE, SUPPORT, SUPPORT_OPERATE = (
    "see", "operate", "manage", "people", "leave", "support", "support-operate",
)  # fmt: skip
CAPABILITY = {
    "devices:detail": SEE,
    "devices:detail-live": SEE,
    "devices:command": OPERATE,
    "devices:readings-csv": SEE,
    "claiming:device-reset": MANAGE,
    "claiming:device-transfer": MANAGE,
    "claiming:transfer-cancel": MANAGE,
    "claiming:device-pin": MANAGE,
    "apps-device:link": MANAGE,
    "devices:rename": MANAGE,
    "devices:credentials-revoke": MANAGE,
    "devices:notifications-device": PEOPLE,
    "devices:share-invite": MANAGE,
    "devices:share-selected": MANAGE,
    "devices:invitation-cancel": MANAGE,
    "devices:share-role": MANAGE,
    "devices:share-revoke": MANAGE,
    "devices:share-leave": LEAVE,
    "devices:support-grant": MANAGE,
    "devices:support-grant-end": MANAGE,
    "support:device": SUPPORT,
    "support:command": SUPPORT_OPERATE,
}
ROLES = ["anonymous", "stranger", "viewer", "operator", "support_without_grant", "support", "owner"]

NOT_FOUND, FORBIDDEN, CONFLICT = HTTPStatus.NOT_FOUND, HTTPStatus.FORBIDDEN, HTTPStatus.CONFLICT
# The refusal each role gets for each capability (None: allowed). Support's grant allows no commands.
REFUSAL = {
    SEE: {"stranger": NOT_FOUND, "support_without_grant": NOT_FOUND},
    OPERATE: {"stranger": NOT_FOUND, "support_without_grant": NOT_FOUND, "viewer": FORBIDDEN, "support": FORBIDDEN},
    MANAGE: {"stranger": NOT_FOUND, "support_without_grant": NOT_FOUND, "viewer": FORBIDDEN, "operator": FORBIDDEN,
             "support": FORBIDDEN},
    PEOPLE: {"stranger": NOT_FOUND, "support_without_grant": NOT_FOUND, "support": FORBIDDEN},
    # Its owner and support see the device but have no share to leave.
    LEAVE: {"stranger": NOT_FOUND, "support_without_grant": NOT_FOUND, "owner": CONFLICT, "support": CONFLICT},
    # The support page is no one else's to know of (404), whatever they may do on the device page.
    SUPPORT: {"stranger": NOT_FOUND, "support_without_grant": NOT_FOUND, "viewer": NOT_FOUND,
              "operator": NOT_FOUND, "owner": NOT_FOUND},
    SUPPORT_OPERATE: {"stranger": NOT_FOUND, "support_without_grant": NOT_FOUND, "viewer": NOT_FOUND,
                      "operator": NOT_FOUND, "owner": NOT_FOUND, "support": FORBIDDEN},
}  # fmt: skip


def _device_urls():
    names = {
        name for route, namespace, name in ALL_URLS if "<uuid:pk>" in route and not _is_public(route, namespace, name)
    }
    return names | {"devices:share-selected"}


def test_every_device_url_has_a_capability():
    assert _device_urls() == set(CAPABILITY), "give these URLs a row in CAPABILITY"


def test_the_matrix_covers_every_role_of_the_access_module():
    from devices import access

    assert {"owner", "operator", "viewer", "support"} == set(access.ROLES)


@pytest.fixture
def world(owner, viewer, operator, shared_device, grant):
    """The owner's device shared with `viewer` and `operator`, support granted (no commands), an
    invitation pending and a transfer offered: something for every action to change."""
    [(invitation, _token)] = sharing.invitations_send(
        devices=[shared_device], email="ivy@example.com", role="viewer", actor=owner, ip=None
    )
    transfers.transfer_offer(device=shared_device, to_email="newowner@example.com", actor=owner, ip=None)
    return {
        "device": shared_device,
        "invitation": invitation,
        "share": Share.objects.get(device=shared_device, user=viewer),
        "grant": grant,
    }


def _url(name, world):
    route = next(route for route, _, n in ALL_URLS if n == name)
    kwargs = {}
    if "<uuid:pk>" in route:
        kwargs["pk"] = world["device"].pk
    if "<int:invitation_id>" in route:
        kwargs["invitation_id"] = world["invitation"].pk
    if "<int:share_id>" in route:
        kwargs["share_id"] = world["share"].pk
    return reverse(name, kwargs=kwargs)


def _post_data(name, world, user):
    """A request the capability alone decides: valid input, so a refusal is about access, not form errors."""
    data = {
        "devices:command": {"name": "identify"},
        "claiming:device-transfer": {"to_email": "someone@example.com"},
        "claiming:device-pin": {"pin": "NEWPIN99", "claimable": "on"},
        "devices:rename": {"name": "Renamed"},
        "devices:notifications-device": {"follow": "custom", "offline": "on"},
        "devices:share-invite": {"email": "new@example.com", "role": "viewer"},
        "devices:share-selected": {"device": str(world["device"].pk), "email": "new@example.com", "role": "viewer"},
        "devices:share-role": {"role": "operator"},
        "devices:support-grant": {"hours": "4"},
        "support:command": {"name": "identify"},
    }.get(name, {})
    if name == "apps-device:link" and user is not None:
        data = {"application": ApplicationFactory(owner=user).app_id}
    return data


def _state(device):
    """Everything a refused request must leave as it was."""
    row = Device.objects.filter(pk=device.pk).values(
        "name", "owner_id", "claimable", "pin_digest", "token_digest", "certificate_serial", "values"
    )
    return {
        "device": list(row),
        "commands": Command.objects.count(),
        "ownership": OwnershipEvent.objects.count(),
        "transfers": list(Transfer.objects.values_list("pk", "cancelled_at", "accepted_at")),
        "links": AppLink.objects.count(),
        "shares": sorted(Share.objects.values_list("user_id", "role")),
        "invitations": sorted(Invitation.objects.values_list("pk", "state")),
        "grants": sorted(SupportGrant.objects.values_list("pk", "ended_at")),
        "audit": AccessEvent.objects.count(),
        "support_views": SupportView.objects.count(),
        "preferences": NotificationPreference.objects.count(),
    }


def _as(client, request, role, world):
    if role == "anonymous":
        return None
    if role == "support_without_grant":
        SupportGrant.objects.filter(pk=world["grant"].pk).update(ends_at=timezone.now() - timedelta(seconds=1))
        role = "support"
    user = request.getfixturevalue(role)
    client.force_login(user)
    return user


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(CAPABILITY))
def test_each_role_gets_what_its_capability_allows(client, request, world, name, role):
    user = _as(client, request, role, world)
    url = _url(name, world)
    before = _state(world["device"])
    answers = [client.get(url), client.post(url, _post_data(name, world, user))]
    served = [r for r in answers if r.status_code != HTTPStatus.METHOD_NOT_ALLOWED]
    assert served, "the view serves neither GET nor POST"

    if role == "anonymous":
        for response in served:
            assert response.status_code == HTTPStatus.FOUND
            assert response["Location"].startswith(reverse("account_login"))
        assert _state(world["device"]) == before
        return

    refusal = REFUSAL[CAPABILITY[name]].get(role)
    if refusal is None:
        for response in served:
            assert response.status_code not in (NOT_FOUND, FORBIDDEN), (name, role, response.status_code)
        return
    for response in served:
        assert response.status_code == refusal, (name, role, response.status_code)
        if refusal == NOT_FOUND:
            assert world["device"].serial.encode() not in response.content  # existence does not leak
        if refusal == FORBIDDEN and CAPABILITY[name] in (OPERATE, MANAGE):
            assert b"Only the owner of this device" in response.content
    assert _state(world["device"]) == before
