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
