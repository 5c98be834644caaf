"""The admin's pages carry the portal's icon in the browser tab, as the owners' pages do."""

import re

from django.templatetags.static import static
from django.urls import reverse


def _icon(html):
    match = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    return match and match.group(1)


def test_the_admin_login_page_has_the_portal_favicon(client, db):
    html = client.get(reverse("admin:login")).content.decode()
    assert _icon(html) == static("img/favicon.svg")
    assert "<title>Log in |" in html  # the admin's own title and page, with the icon added


def test_the_admin_index_and_lists_have_the_portal_favicon(admin_client):
    for url in (reverse("admin:index"), reverse("admin:devices_device_changelist")):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert _icon(response.content.decode()) == static("img/favicon.svg"), url


def test_the_admin_speaks_with_the_portals_name(admin_client, settings):
    settings.PORTAL_NAME = "Acme Devices"
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Acme Devices admin" in html and "Django administration" not in html
