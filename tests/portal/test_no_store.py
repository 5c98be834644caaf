"""Owner and account pages are never kept by the browser or a shared cache (Cache-Control: no-store)."""

import pytest
from django.urls import reverse

from ..hardening.test_access_matrix import APP_PAGES, DEVICE_PAGES, OWNER_PAGES, _url, world  # noqa: F401

ACCOUNT_PAGES = ["account_login", "account_signup", "account_email", "account_change_password", "account_logout"]


@pytest.mark.parametrize("name", sorted(DEVICE_PAGES | APP_PAGES | OWNER_PAGES))
def test_every_owner_page_is_no_store(client, owner, world, name):  # noqa: F811
    client.force_login(owner)
    response = client.get(_url(name, world))
    assert "no-store" in response.get("Cache-Control", ""), (name, response.status_code)


@pytest.mark.parametrize("name", ACCOUNT_PAGES)
def test_account_pages_are_no_store_logged_in_or_not(client, owner, name):
    assert "no-store" in client.get(reverse(name)).get("Cache-Control", "")
    client.force_login(owner)
    assert "no-store" in client.get(reverse(name)).get("Cache-Control", "")


def test_public_assets_stay_cacheable(client, owner):
    client.force_login(owner)
    assert "public" in client.get(reverse("branding-css"))["Cache-Control"]
