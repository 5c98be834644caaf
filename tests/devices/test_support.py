"""The maker's support page (/support/): who may open it, what it shows under a live grant, and the
record of every view, which the owner reads (issue 18)."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devices.models import AccessEvent, AccessEventKind, Command, SupportGrant, SupportView
from devices.selectors import access_event_list_for_device
from tests.factories import DeviceFactory, SupportGrantFactory, UserFactory
from tests.sharing_fixtures import support_permission

pytestmark = pytest.mark.django_db
pytest_plugins = ["tests.sharing_fixtures"]

LIST = reverse("support:list")


def client_of(user):
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_is_sent_to_log_in(client):
    response = client.get(LIST)
    assert response.status_code == HTTPStatus.FOUND and response.url.startswith(reverse("account_login"))


def test_a_person_who_is_not_staff_gets_404(owner, grant):
    assert client_of(owner).get(LIST).status_code == HTTPStatus.NOT_FOUND


def test_staff_without_the_permission_gets_403_with_a_message(staff_without_support, grant):
    response = client_of(staff_without_support).get(LIST)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"permission to support devices" in response.content
    assert grant.device.serial.encode() not in response.content


def test_support_without_grants_sees_an_empty_list(support, shared_device):
    response = client_of(support).get(LIST)
    assert response.status_code == HTTPStatus.OK
    assert shared_device.serial.encode() not in response.content
    assert b"No owner has granted" in response.content


def test_the_list_shows_only_granted_devices_with_their_owners_email_and_records_each_view(owner, support, grant):
    ungranted = DeviceFactory(owner=owner)
    response = client_of(support).get(LIST, REMOTE_ADDR="203.0.113.5")
    html = response.content.decode()
    assert grant.device.serial in html and owner.email in html
    assert ungranted.serial not in html
    view = SupportView.objects.get()
    assert (view.grant, view.staff, view.what) == (grant, support, "Support list")
    assert AccessEvent.objects.get(kind=AccessEventKind.SUPPORT_VIEWED).ip == "203.0.113.5"


def test_an_expired_grant_is_gone_from_the_list_before_the_beat_task_runs(support, grant):
    SupportGrant.objects.filter(pk=grant.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    response = client_of(support).get(LIST)
    assert grant.device.serial.encode() not in response.content
    assert not SupportView.objects.exists()


def test_the_device_page_shows_owner_values_and_commands_and_is_recorded(owner, support, grant):
    response = client_of(support).get(reverse("support:device", args=[grant.device.pk]))
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert owner.email in html and "temperature" in html and "21.5" in html
    assert "did not allow support to send commands" in html
    assert SupportView.objects.get().what == "Device details"


def test_the_device_page_without_a_grant_is_404(owner, support):
    device = DeviceFactory(owner=owner)
    assert client_of(support).get(reverse("support:device", args=[device.pk])).status_code == HTTPStatus.NOT_FOUND
    assert not SupportView.objects.exists()


def test_a_command_without_the_owners_leave_is_403_and_sends_nothing(support, grant):
    response = client_of(support).post(reverse("support:command", args=[grant.device.pk]), {"name": "identify"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"did not allow support" in response.content
    assert not Command.objects.exists()


def test_a_command_the_owner_allowed_goes_through_the_command_service(owner, support):
    device = DeviceFactory(owner=owner)
    SupportGrantFactory(device=device, granted_by=owner, allow_commands=True)
    response = client_of(support).post(reverse("support:command", args=[device.pk]), {"name": "identify"})
    assert response.status_code == HTTPStatus.FOUND
    command = Command.objects.get()
    assert (command.device, command.name, command.sent_by_user) == (device, "identify", support)
    assert SupportView.objects.filter(what="Sent the command identify").exists()


def test_a_command_to_a_device_without_a_grant_is_404(owner, support):
    device = DeviceFactory(owner=owner)
    response = client_of(support).post(reverse("support:command", args=[device.pk]), {"name": "identify"})
    assert response.status_code == HTTPStatus.NOT_FOUND


def test_the_owner_sees_every_support_view_in_the_audit(owner, support, grant):
    client_of(support).get(reverse("support:device", args=[grant.device.pk]))
    grant.device.refresh_from_db()
    [event] = access_event_list_for_device(grant.device, viewer=owner)
    assert event.kind == AccessEventKind.SUPPORT_VIEWED and event.whom == "the maker's support"


def test_staff_without_a_grant_see_what_they_saw_before_in_the_admin(owner, grant):
    """Staff with the support permission but not the owner permission still see no owner in the admin."""
    admin = UserFactory(is_staff=True)
    admin.user_permissions.add(support_permission())
    admin.user_permissions.add(*Permission.objects.filter(content_type__app_label="devices", codename="view_device"))
    response = client_of(admin).get(reverse("admin:devices_device_change", args=[DeviceFactory(owner=owner).pk]))
    assert response.status_code == HTTPStatus.OK
    assert owner.email.encode() not in response.content
