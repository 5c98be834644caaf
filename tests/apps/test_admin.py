"""The OEM's admin: managed applications, with the Secret and connect links shown once."""

import re
from http import HTTPStatus

import pytest
from django.urls import reverse

from apps.models import Application, ConnectLink
from portal.secrets import decrypt

from ..factories import ApplicationFactory


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_adding_a_managed_application_shows_its_secret_once(admin_client):
    response = admin_client.post(
        reverse("admin:apps_application_add"),
        {
            "name": "Maker Cloud",
            "managed": "on",
            "description": "Charts and alerts.",
            "registration_url": "https://cloud.example.com/register",
            "logo_url": "",
            "callback_url": "",
            "auth_style": "basic",
            "token_prefix": "Token",
            "owner": "",
        },
    )
    assert response.status_code == HTTPStatus.OK
    application = Application.objects.get()
    assert application.managed and application.owner is None
    secret = re.search(r'data-secret="([^"]+)"', response.content.decode()).group(1)
    assert decrypt(application.secret_encrypted) == secret
    assert "no-store" in response["Cache-Control"]
    change = admin_client.get(reverse("admin:apps_application_change", args=[application.pk]))
    assert secret not in change.content.decode()


def test_the_admin_refuses_a_private_callback(admin_client):
    response = admin_client.post(
        reverse("admin:apps_application_add"),
        {"name": "Internal", "managed": "on", "callback_url": "https://10.0.0.1/x", "auth_style": "basic"},
    )
    assert response.status_code == HTTPStatus.OK
    assert "private address" in response.content.decode()
    assert not Application.objects.exists()


def test_a_connect_link_from_the_admin(admin_client):
    application = ApplicationFactory(owner=None, managed=True)
    response = admin_client.post(
        reverse("admin:apps_application_changelist"),
        {"action": "connect_link_action", "_selected_action": [application.pk]},
    )
    assert response.status_code == HTTPStatus.OK
    assert "/apps/connect/" in response.content.decode()
    assert ConnectLink.objects.filter(application=application).count() == 1


def test_the_admin_lists_applications_and_deliveries(admin_client):
    ApplicationFactory(owner=None, managed=True)
    assert admin_client.get(reverse("admin:apps_application_changelist")).status_code == HTTPStatus.OK
    assert admin_client.get(reverse("admin:apps_delivery_changelist")).status_code == HTTPStatus.OK


# --- owners' applications are the owners' -------------------------------------------------------


@pytest.fixture
def curator(client, user_factory):
    """An OEM admin who curates the managed applications: every permission on applications but
    the one for owners' applications."""
    from django.contrib.auth.models import Permission

    user = user_factory(email="curator@example.com", username="curator", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="apps").exclude(codename="manage_owner_applications")
    )
    client.force_login(user)
    return client


def test_a_curator_neither_sees_nor_takes_over_an_owners_application(curator, owner, private_targets):
    owned = ApplicationFactory(owner=owner, name="Alice dashboard", callback_url="https://alice.example/hook")
    managed = ApplicationFactory(owner=None, managed=True, name="Maker Cloud")
    listing = curator.get(reverse("admin:apps_application_changelist")).content.decode()
    assert "Maker Cloud" in listing and "Alice dashboard" not in listing
    assert curator.get(reverse("admin:apps_application_change", args=[owned.pk])).status_code == HTTPStatus.FOUND
    before = (owned.secret_digest, owned.callback_url)
    for action in ("secret_replace_action", "connect_link_action"):
        response = curator.post(
            reverse("admin:apps_application_changelist"), {"action": action, "_selected_action": [owned.pk]}
        )
        assert "data-secret" not in response.content.decode() and "/apps/connect/" not in response.content.decode()
    owned.refresh_from_db()
    assert (owned.secret_digest, owned.callback_url) == before
    assert not ConnectLink.objects.filter(application=owned).exists()
    # The managed ones stay the curator's to run, and the form offers no owner to give one to.
    form = curator.get(reverse("admin:apps_application_change", args=[managed.pk])).content.decode()
    assert 'name="owner"' not in form


def test_with_the_owner_applications_permission_an_admin_sees_them(admin_client, owner):
    ApplicationFactory(owner=owner, name="Alice dashboard")
    assert "Alice dashboard" in admin_client.get(reverse("admin:apps_application_changelist")).content.decode()


def test_setting_a_callback_again_in_the_admin_ends_the_callback_off_note(admin_client, private_targets):
    from django.utils import timezone

    managed = ApplicationFactory(owner=None, managed=True, name="Maker Cloud")
    Application.objects.filter(pk=managed.pk).update(callback_off_at=timezone.now(), callback_off_reason="410 Gone")
    response = admin_client.post(
        reverse("admin:apps_application_change", args=[managed.pk]),
        {
            "name": "Maker Cloud", "managed": "on", "description": "", "registration_url": "", "logo_url": "",
            "callback_url": "http://127.0.0.1:9/hook", "auth_style": "basic", "token_prefix": "Token", "owner": "",
        },
    )
    assert response.status_code == HTTPStatus.FOUND, response.content.decode()[:2000]
    managed.refresh_from_db()
    assert managed.callback_url == "http://127.0.0.1:9/hook" and managed.callback_off_at is None
