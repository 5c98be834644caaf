"""The admin site, with its log-in limited like the owners' (allauth's `login_failed`: per address
and per account), counted by the portal's client address so that, behind the proxy, each client
has its own count."""

import hashlib

from django.conf import settings
from django.contrib import admin
from django.shortcuts import render

from . import ratelimit
from .errors import Throttled
from .http import client_ip

# As ACCOUNT_RATE_LIMITS["login_failed"]: 10 a minute per address, 5 in 5 minutes per account.
PER_ADDRESS = (10, 60)
PER_ACCOUNT = (5, 5 * 60)


def admin_login_counters(request):
    account = request.POST.get("username", "").strip().lower()
    account_digest = hashlib.sha256(account.encode()).hexdigest()  # a cache key holds no typed text
    return [
        ("admin-login:ip", client_ip(request) or "unknown", *PER_ADDRESS),
        ("admin-login:account", account_digest, *PER_ACCOUNT),
    ]


class PortalAdminSite(admin.AdminSite):
    # The white label's name (PORTAL_NAME), not Django's.
    site_header = site_title = property(lambda self: f"{settings.PORTAL_NAME} admin")
    index_title = "Products, devices and applications"

    def login(self, request, extra_context=None):
        if request.method != "POST":
            return super().login(request, extra_context)
        try:
            keys = ratelimit.attempts(admin_login_counters(request))
        except Throttled as exc:
            minutes = max(1, round(exc.retry_after / 60))
            response = render(
                request,
                "error.html",
                {
                    "status": exc.status,
                    "title": "Too many attempts",
                    "message": f"Too many failed log-in attempts. Wait {minutes} minute(s) and try again.",
                },
                status=exc.status,
            )
            response["Retry-After"] = str(exc.retry_after)
            return response
        response = super().login(request, extra_context)
        if request.user.is_authenticated and request.user.is_staff:
            ratelimit.forgive(*keys)  # only wrong guesses count
        return response
