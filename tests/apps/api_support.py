"""Helpers for the integrator API tests: applications with a known Secret, links, the Basic header."""

import base64
import itertools

from apps.api.authentication import _secret_purpose
from apps.models import Application, AppLink
from portal.secrets import encrypt, keyed_digest, random_token

_app_numbers = itertools.count(1)


def make_application(owner=None, *, secret=None, **fields) -> Application:
    """An application whose raw Secret is kept on `raw_secret` (the database has only its digest)."""
    secret = secret or random_token()
    number = next(_app_numbers)
    application = Application.objects.create(
        app_id=fields.pop("app_id", f"app-test-{number:05d}"),
        owner=owner,
        name=fields.pop("name", f"Test application {number}"),
        secret_encrypted=encrypt(secret),
        secret_digest=keyed_digest(secret, purpose=_secret_purpose()),
        signing_secret_encrypted=encrypt("whsec_" + base64.b64encode(random_token().encode()[:32]).decode()),
        **fields,
    )
    application.raw_secret = secret
    return application


def link(application, *devices):
    AppLink.objects.bulk_create([AppLink(application=application, device=device) for device in devices])


def basic_header(app_id, secret) -> dict:
    """Test-client keyword arguments for `Authorization: Basic base64(AppId:Secret)`."""
    token = base64.b64encode(f"{app_id}:{secret}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def auth(application) -> dict:
    return basic_header(application.app_id, application.raw_secret)
