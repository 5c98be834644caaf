"""Sharing as a browser sees it: the invitation link (with log-in and sign-up), the device page's
panels and their actions, sharing from the device list, and the 404/403 rule (issue 18)."""

from http import HTTPStatus

import pytest
from django.core import mail
from django.test import Client, RequestFactory
from django.urls import reverse

from devices import sharing
from devices.models import (
    AccessEvent,
    AccessEventKind,
    Invitation,
    InvitationState,
    Share,
    SupportGrant,
)
from portal.logging import redact
from tests.factories import DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]

INVITEE = "ivy@example.com"
PASSWORD = "a long pass phrase 9"


def client_of(user):
    client = Client()
    client.force_login(user)
    return client


def invitation_path(owner, device, *, email=INVITEE, role="viewer"):
    [(_invitation, token)] = sharing.invitations_send(devices=[device], email=email, role=role, actor=owner, ip=None)
    return reverse("sharing:invitation", args=[token]), token


@pytest.fixture
def device(owner):
    return DeviceFactory(owner=owner, name="Mum's secret heater")


# --- the invitation link -----------------------------------------------------------------------


def test_the_link_path_is_shares_and_its_token_is_redacted_from_logs(owner, device):
    path, token = invitation_path(owner, device)
    assert path == f"/shares/{token}"
    assert token not in redact(f'"GET {path} HTTP/1.1" 200')
    assert token not in redact(f"/accounts/login/?next={path}")
    assert token not in redact("/accounts/login/?next=" + path.replace("/", "%2F"))


def test_an_anonymous_visitor_is_sent_to_log_in_and_back(client, owner, device):
    path, _token = invitation_path(owner, device)
    response = client.get(path)
    assert response.status_code == HTTPStatus.FOUND
    assert response.url == reverse("account_login") + "?next=" + path
    page = client.get(response.url)
    assert b"the address the invitation was sent to" in page.content
    assert f"/accounts/signup/?next={path.replace('/', '%2F')}".encode() in page.content


def test_the_invitation_page_names_inviter_product_and_serial_not_the_nickname(owner, device):
    invitee = UserFactory(email=INVITEE)
    path, _token = invitation_path(owner, device, role="operator")
    response = client_of(invitee).get(path)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert owner.email in html and device.serial in html and device.product.name in html and "Operator" in html
    assert "secret heater" not in html
    assert 'value="accept"' in html and 'value="decline"' in html


def test_accepting_as_an_existing_user_goes_to_the_device(owner, device):
    invitee = UserFactory(email=INVITEE)
    path, _token = invitation_path(owner, device)
    response = client_of(invitee).post(path, {"answer": "accept"})
    assert response.status_code == HTTPStatus.FOUND
    assert response.url == reverse("devices:detail", args=[device.pk])
    assert Share.objects.get(device=device).user == invitee


def test_declining_goes_to_the_device_list(owner, device):
    invitee = UserFactory(email=INVITEE)
    path, _token = invitation_path(owner, device)
    response = client_of(invitee).post(path, {"answer": "decline"})
    assert response.url == reverse("devices:list")
    assert Invitation.objects.get().state == InvitationState.DECLINED
    assert not Share.objects.exists()


def test_the_wrong_account_is_told_which_address_to_use(owner, device, other_owner):
    path, _token = invitation_path(owner, device)
    response = client_of(other_owner).post(path, {"answer": "accept"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert INVITEE.encode() in response.content
    assert not Share.objects.exists()


def test_an_unknown_link_is_a_friendly_404(other_owner):
    response = client_of(other_owner).get(reverse("sharing:invitation", args=["not-a-token"]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert b"does not work" in response.content


def test_a_used_link_says_so(owner, device):
    invitee = UserFactory(email=INVITEE)
    path, _token = invitation_path(owner, device)
    client = client_of(invitee)
    client.post(path, {"answer": "accept"})
    response = client.get(path)
    assert response.status_code == HTTPStatus.CONFLICT
    assert b"already been accepted" in response.content


def _sign_up_from(client, path):
    response = client.post(
        reverse("account_signup") + "?next=" + path,
        {"email": INVITEE, "password1": PASSWORD, "password2": PASSWORD, "next": path},
    )
    assert response.status_code == HTTPStatus.FOUND
    [message] = [m for m in mail.outbox if "confirm-email" in m.body]
    link = next(line for line in message.body.splitlines() if "/accounts/confirm-email/" in line).strip()
    return link.split("testserver", 1)[1]


def test_a_new_user_signs_up_from_the_link_and_comes_back_after_verifying(client, owner, device):
    path, _token = invitation_path(owner, device)
    confirm = _sign_up_from(client, path)
    response = client.post(confirm.split("?")[0], {"next": path}, follow=True)
    assert response.redirect_chain[-1][0] == path
    assert device.serial.encode() in response.content
    response = client.post(path, {"answer": "accept"})
    assert response.url == reverse("devices:detail", args=[device.pk])
    assert Share.objects.get(device=device).user.email == INVITEE


def test_a_new_user_verifying_in_another_browser_still_lands_on_the_invitation(client, owner, device):
    path, _token = invitation_path(owner, device)
    confirm = _sign_up_from(client, path)
    client.cookies.clear()  # the mail app's browser: no session
    page = client.get(confirm)
    assert f'name="next" value="{path}"'.encode() in page.content
    response = client.post(confirm.split("?")[0], {"next": path}, follow=True)
    login_url = response.redirect_chain[-1][0]
    assert login_url.startswith(reverse("account_login") + "?next=/shares/")
    response = client.post(login_url, {"login": INVITEE, "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == path
    assert client.post(path, {"answer": "accept"}).status_code == HTTPStatus.FOUND
    assert Share.objects.filter(device=device, user__email=INVITEE).exists()


# --- the panels --------------------------------------------------------------------------------


def _page(user, device):
    response = client_of(user).get(reverse("devices:detail", args=[device.pk]))
    assert response.status_code == HTTPStatus.OK
    return response.content.decode()


def test_the_owner_sees_the_sharing_panels_and_not_the_shared_users_one(owner, shared_device, viewer, grant):
    sharing.invitations_send(devices=[shared_device], email=INVITEE, role="viewer", actor=owner, ip=None)
    html = _page(owner, shared_device)
    assert reverse("devices:share-invite", args=[shared_device.pk]) in html
    assert "Who has access" in html and viewer.email in html
    assert "Pending invitations" in html and INVITEE in html
    assert reverse("devices:support-grant-end", args=[shared_device.pk]) in html
    assert "Access history" in html and "Invited" in html
    assert "Shared with you" not in html
    assert "owner sees that you looked" not in html


def test_a_viewer_sees_only_their_own_panel_and_nothing_of_the_owners(owner, shared_device, viewer):
    html = _page(viewer, shared_device)
    assert "Shared with you" in html and owner.email in html and "viewer" in html
    assert reverse("devices:share-leave", args=[shared_device.pk]) in html
    for owners_only in ("Share this device", "Who has access", "Access history", "The maker&#x27;s support",
                        "Last IP address", "Send command", "Reset ownership", "Hand over with a PIN"):
        assert owners_only not in html, owners_only


def test_the_support_notice_records_the_view(owner, shared_device, support, grant):
    html = _page(support, shared_device)
    assert "owner sees that you looked" in html
    assert AccessEvent.objects.filter(kind=AccessEventKind.SUPPORT_VIEWED, actor=support).count() == 1


# --- the panels' actions -----------------------------------------------------------------------


def test_the_owner_invites_from_the_device_page(owner_client, device, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("devices:share-invite", args=[device.pk]), {"email": INVITEE, "role": "operator"}
        )
    assert response.status_code == HTTPStatus.FOUND
    assert response.url == reverse("devices:detail", args=[device.pk]) + "#sharing"
    assert Invitation.objects.get(device=device).role == "operator"
    assert mail.outbox[0].to == [INVITEE]


def test_a_refused_invitation_says_why_with_its_status(owner_client, owner, shared_device, viewer):
    response = owner_client.post(
        reverse("devices:share-invite", args=[shared_device.pk]), {"email": viewer.email, "role": "viewer"}
    )
    assert response.status_code == HTTPStatus.CONFLICT
    assert b"already has access" in response.content


def test_a_bad_address_is_a_400(owner_client, device):
    response = owner_client.post(reverse("devices:share-invite", args=[device.pk]), {"email": "nope", "role": "viewer"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not Invitation.objects.exists()


def test_too_many_invitations_is_a_429_with_retry_after(owner_client, owner):
    for n in range(sharing.INVITATIONS_PER_USER[0][0]):
        sharing.invitations_send(
            devices=[DeviceFactory(owner=owner)], email=f"f{n}@example.com", role="viewer", actor=owner, ip=None
        )
    device = DeviceFactory(owner=owner)
    url = reverse("devices:share-invite", args=[device.pk])
    response = owner_client.post(url, {"email": INVITEE, "role": "viewer"})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response["Retry-After"]) > 0


def test_a_viewer_who_tries_to_invite_gets_403_with_a_message(shared_device, viewer):
    response = client_of(viewer).post(
        reverse("devices:share-invite", args=[shared_device.pk]), {"email": INVITEE, "role": "viewer"}
    )
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"Only the owner of this device can" in response.content
    assert not Invitation.objects.exists()


def test_a_stranger_who_tries_to_invite_gets_404(shared_device, stranger):
    response = client_of(stranger).post(
        reverse("devices:share-invite", args=[shared_device.pk]), {"email": INVITEE, "role": "viewer"}
    )
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert shared_device.serial.encode() not in response.content


def test_the_owner_changes_a_role_revokes_and_cancels(owner_client, owner, shared_device, viewer, operator):
    viewer_share = Share.objects.get(user=viewer)
    response = owner_client.post(
        reverse("devices:share-role", args=[shared_device.pk, viewer_share.pk]), {"role": "operator"}
    )
    assert response.status_code == HTTPStatus.FOUND
    assert Share.objects.get(pk=viewer_share.pk).role == "operator"
    operator_share = Share.objects.get(user=operator)
    owner_client.post(reverse("devices:share-revoke", args=[shared_device.pk, operator_share.pk]))
    assert not Share.objects.filter(pk=operator_share.pk).exists()
    [(invitation, _)] = sharing.invitations_send(
        devices=[shared_device], email=INVITEE, role="viewer", actor=owner, ip=None
    )
    owner_client.post(reverse("devices:invitation-cancel", args=[shared_device.pk, invitation.pk]))
    assert Invitation.objects.get(pk=invitation.pk).state == InvitationState.CANCELLED


def test_a_share_of_another_device_is_404(owner_client, owner, shared_device, viewer):
    other = DeviceFactory(owner=owner)
    share = Share.objects.get(user=viewer)
    response = owner_client.post(reverse("devices:share-revoke", args=[other.pk, share.pk]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert Share.objects.filter(pk=share.pk).exists()


def test_a_viewer_leaves_and_the_device_leaves_their_list(shared_device, viewer):
    client = client_of(viewer)
    response = client.post(reverse("devices:share-leave", args=[shared_device.pk]))
    assert response.url == reverse("devices:list")
    assert client.get(reverse("devices:detail", args=[shared_device.pk])).status_code == HTTPStatus.NOT_FOUND


def test_the_owner_cannot_leave_their_own_device(owner_client, shared_device):
    response = owner_client.post(reverse("devices:share-leave", args=[shared_device.pk]))
    assert response.status_code == HTTPStatus.CONFLICT
    assert b"not shared with you" in response.content


def test_the_owner_grants_and_ends_support(owner_client, device):
    response = owner_client.post(
        reverse("devices:support-grant", args=[device.pk]), {"hours": "4", "allow_commands": "on"}
    )
    assert response.status_code == HTTPStatus.FOUND
    grant = SupportGrant.objects.get(device=device, ended_at__isnull=True)
    assert grant.allow_commands
    owner_client.post(reverse("devices:support-grant-end", args=[device.pk]))
    assert SupportGrant.objects.get(pk=grant.pk).ended_reason == SupportGrant.EndedReason.OWNER


def test_a_period_outside_the_choices_is_refused(owner_client, device):
    response = owner_client.post(reverse("devices:support-grant", args=[device.pk]), {"hours": "1000"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not SupportGrant.objects.exists()


def test_ending_support_without_a_grant_says_so(owner_client, device):
    response = owner_client.post(reverse("devices:support-grant-end", args=[device.pk]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert b"no support access" in response.content


# --- share selected, from the device list ------------------------------------------------------


def test_share_selected_sends_one_invitation_for_the_ticked_devices(
    owner_client, owner, django_capture_on_commit_callbacks
):
    devices = [DeviceFactory(owner=owner) for _ in range(2)]
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("devices:share-selected"),
            {"device": [str(d.pk) for d in devices], "email": INVITEE, "role": "viewer"},
        )
    assert response.url == reverse("devices:list")
    assert Invitation.objects.filter(email=INVITEE).count() == 2
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    "bad, status",
    [("not-a-uuid", HTTPStatus.NOT_FOUND), ("foreign", HTTPStatus.NOT_FOUND), ("shared", HTTPStatus.FORBIDDEN)],
)
def test_share_selected_with_a_device_not_yours_shares_nothing(owner, other_owner, viewer, shared_device, bad, status):
    mine = DeviceFactory(owner=viewer)
    value = {"not-a-uuid": "xyz", "foreign": str(DeviceFactory(owner=other_owner).pk), "shared": str(shared_device.pk)}
    response = client_of(viewer).post(
        reverse("devices:share-selected"), {"device": [str(mine.pk), value[bad]], "email": INVITEE, "role": "viewer"}
    )
    assert response.status_code == status  # the 404/403 rule, as for one device
    assert not Invitation.objects.exists()


def test_share_selected_with_nothing_ticked_asks_for_a_device(owner_client):
    response = owner_client.post(reverse("devices:share-selected"), {"email": INVITEE, "role": "viewer"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"at least one device" in response.content


# --- the 403 page ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["devices:rename", "claiming:device-reset", "claiming:device-transfer"])
def test_an_owner_page_says_to_a_viewer_who_may_do_it(shared_device, viewer, name):
    response = client_of(viewer).get(reverse(name, args=[shared_device.pk]))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"Only the owner of this device can" in response.content


def test_a_viewer_who_sends_a_command_is_told_who_may(shared_device, viewer):
    url = reverse("devices:command", args=[shared_device.pk])
    response = client_of(viewer).post(url, {"name": "identify"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"operators, can send it commands" in response.content


def test_an_operator_sends_a_command(shared_device, operator):
    url = reverse("devices:command", args=[shared_device.pk])
    response = client_of(operator).post(url, {"name": "identify"})
    assert response.status_code == HTTPStatus.FOUND
    assert shared_device.commands.get().sent_by_user == operator


def test_other_refusals_keep_the_generic_403():
    from django.core.exceptions import PermissionDenied

    from portal.views import permission_denied

    request = RequestFactory().get("/somewhere/")
    request.user = UserFactory()
    response = permission_denied(request, PermissionDenied("internal detail"))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"internal detail" not in response.content and b"not allowed to do that" in response.content
