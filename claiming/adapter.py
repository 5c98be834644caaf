"""allauth adapter: a claim that starts from a QR code survives sign-up and email verification.

allauth already carries `next` from log-in to sign-up and, in the same browser session, through
email verification. A phone often opens the verification link in another browser (the mail app's),
where that session is gone; so the link itself carries the safe `next` too, and the confirmation
page passes it on.
"""

from urllib.parse import urlencode

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.utils import get_next_redirect_url
from django.core.exceptions import PermissionDenied

from portal.http import client_ip


class AccountAdapter(DefaultAccountAdapter):
    def get_email_confirmation_url(self, request, emailconfirmation):
        url = super().get_email_confirmation_url(request, emailconfirmation)
        next_url = get_next_redirect_url(request) if request is not None else None
        if next_url:
            url += ("&" if "?" in url else "?") + urlencode({"next": next_url})
        return url

    def get_client_ip(self, request):
        """The address the portal's own limits use: allauth's log-in and sign-up limits then count
        per client behind the trusted proxy too, not per proxy."""
        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine the client's address.")
        return ip
