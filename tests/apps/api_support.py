"""Helpers for the integrator API tests: applications with a known Secret, links, the Basic header."""

import base64

from apps.models import AppLink

from ..factories import ApplicationFactory


def make_application(owner=None, **fields):
    """An application whose raw Secret is on `raw_secret` (the database has only its digest)."""
    return ApplicationFactory(owner=owner, **fields)


def link(application, *devices):
    AppLink.objects.bulk_create([AppLink(application=application, device=device) for device in devices])


def basic_header(app_id, secret) -> dict:
    """Test-client keyword arguments for `Authorization: Basic base64(AppId:Secret)`."""
    token = base64.b64encode(f"{app_id}:{secret}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def auth(application) -> dict:
    return basic_header(application.app_id, application.raw_secret)
