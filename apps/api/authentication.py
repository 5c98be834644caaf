"""Who is calling the integrator API: an application, by `Authorization: Basic base64(AppId:Secret)`.

The Secret is compared with its keyed digest in constant time, and an unknown App Id costs the
same work as a known one, so timing tells nothing about which App Ids exist. Wrong credentials are
counted per client address; past the limit every attempt from there is a 429 for the rest of the
minute. A paused or deleted application is refused (401). No session authentication: the API has
no cookies, so no CSRF.
"""

import contextlib
import logging
from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from apps import sql
from apps.models import Application
from apps.services.applications import APP_SECRET_PURPOSE
from portal import ratelimit
from portal.errors import Throttled
from portal.http import BadBasicCredentials, basic_credentials, client_ip
from portal.secrets import digests_match

logger = logging.getLogger(__name__)

REALM = "api"
MAX_APP_ID_LENGTH = Application._meta.get_field("app_id").max_length
MAX_SECRET_LENGTH = 200
# Wrong credentials allowed per client address and minute before 429: guessing Secrets stays slow.
AUTH_FAILURES_PER_IP = (30, 60)


# Compared against when the App Id is unknown, so both paths compute and compare one digest.
_NO_DIGEST = "0" * 64


@dataclass(frozen=True)
class ApplicationClient:
    """`request.user` of an API call: the application itself, never a person."""

    application: Application
    is_authenticated = True
    is_anonymous = False

    def __str__(self):
        return f"application {self.application.app_id}"


_BAD_BASIC = {
    "base64": "The Basic credentials are not valid base64 of AppId:Secret.",
    "shape": "The Basic credentials must be AppId:Secret.",
    "name": "The App Id or Secret is wrong.",
}


def _credentials(request) -> tuple[str, str] | None:
    try:
        return basic_credentials(request, max_user=MAX_APP_ID_LENGTH, max_password=MAX_SECRET_LENGTH)
    except BadBasicCredentials as bad:
        raise exceptions.AuthenticationFailed(_BAD_BASIC[bad.reason]) from None


class ApplicationBasicAuthentication(BaseAuthentication):
    """HTTP Basic with the application's App Id as user name and its Secret as password."""

    def authenticate(self, request):
        credentials = _credentials(request)
        if credentials is None:
            return None  # another scheme: answered 401 with our challenge by IsAuthenticated
        app_id, secret = credentials
        ip = client_ip(request) or "-"
        limit, window = AUTH_FAILURES_PER_IP
        ratelimit.check("api-auth-fail-ip", ip, limit=limit, window=window)
        application = sql.application_by_app_id(app_id)
        digest = application.secret_digest if application is not None else _NO_DIGEST
        if not digests_match(secret, digest, purpose=APP_SECRET_PURPOSE) or application is None:
            logger.warning("api.auth_rejected", extra={"reason": "wrong_credentials", "app_id": app_id[:8]})
            with contextlib.suppress(Throttled):  # this attempt is answered as the 401 it is
                ratelimit.hit("api-auth-fail-ip", ip, limit=limit, window=window)
            raise exceptions.AuthenticationFailed("The App Id or Secret is wrong.")
        if application.paused_at is not None:
            logger.warning("api.auth_rejected", extra={"reason": "paused", "app_id": app_id})
            raise exceptions.AuthenticationFailed(
                "This application is paused. Its owner can resume it on the application's page."
            )
        return ApplicationClient(application), application

    def authenticate_header(self, request):
        return f'Basic realm="{REALM}"'


class ApplicationBasicScheme(OpenApiAuthenticationExtension):
    target_class = ApplicationBasicAuthentication
    name = "appBasic"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": "Your application's App Id as user name and its Secret as password: "
            "`Authorization: Basic base64(AppId:Secret)`. Both are on the application's page in the portal.",
        }
