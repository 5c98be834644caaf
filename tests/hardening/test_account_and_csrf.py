"""CSRF on every form, and the account-takeover paths: verification before claiming, a changed
email verified again, a password reset that does not tell whether an account exists."""

from http import HTTPStatus

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.urls import reverse

from ..factories import ClaimCodeFactory, DeviceFactory, UserFactory
from .test_access_matrix import ALL_URLS, APP_PAGES, DEVICE_PAGES, OWNER_PAGES, _url, world  # noqa: F401


@pytest.mark.parametrize("name", sorted(DEVICE_PAGES | APP_PAGES | OWNER_PAGES))
def test_every_owner_form_refuses_a_post_without_csrf_token(owner, world, name):  # noqa: F811
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(_url(name, world), {})
    assert response.status_code in (HTTPStatus.FORBIDDEN, HTTPStatus.METHOD_NOT_ALLOWED)


def test_login_form_refuses_a_post_without_csrf_token(owner):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("account_login"), {"login": owner.email, "password": "correct horse battery staple"})
    assert response.status_code == HTTPStatus.FORBIDDEN


def test_an_unverified_address_cannot_claim(client, db):
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    user = UserFactory(verified=False)
    client.force_login(user)
    response = client.post(reverse("claiming:claim"), {"method": "code", "code": code.raw_code})
    device.refresh_from_db()
    assert device.owner is None
    assert response.status_code in (HTTPStatus.FORBIDDEN, HTTPStatus.FOUND, HTTPStatus.BAD_REQUEST)


def test_a_changed_email_must_be_verified_before_it_counts(client, owner):
    client.force_login(owner)
    client.post(reverse("account_email"), {"action_add": "", "email": "new-address@example.com"})
    added = EmailAddress.objects.get(user=owner, email="new-address@example.com")
    assert not added.verified
    assert any("new-address@example.com" in message.to for message in mail.outbox)
    # Making the unverified address primary is refused: the verified one stays the login.
    client.post(reverse("account_email"), {"action_primary": "", "email": "new-address@example.com"})
    assert EmailAddress.objects.get_primary(owner).email == owner.email


def test_password_reset_says_the_same_for_known_and_unknown_addresses(client, owner):
    known = client.post(reverse("account_reset_password"), {"email": owner.email})
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody-here@example.com"})
    assert known.status_code == unknown.status_code == HTTPStatus.FOUND
    assert known["Location"] == unknown["Location"]
    assert client.get(known["Location"]).content == client.get(unknown["Location"]).content
