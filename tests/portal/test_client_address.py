"""Behind the trusted proxy, every limit counts per client, log-ins included."""

import pytest
from allauth.account.adapter import DefaultAccountAdapter
from django.urls import reverse

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"


TOO_MANY = str(DefaultAccountAdapter.error_messages["too_many_login_attempts"])


def locked_out(client, n, client_address) -> bool:
    response = client.post(
        reverse("account_login"),
        {"login": f"nobody{n}@example.com", "password": "wrong password"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=client_address,
    )
    return TOO_MANY in response.content.decode()


def test_log_in_limits_count_per_client_behind_the_proxy(client, settings):
    settings.TRUSTED_PROXY_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip"}  # the suite turns allauth's limits off
    answers = [locked_out(client, n, "203.0.113.1") for n in range(11)]
    assert answers == [False] * 10 + [True]
    # Another client behind the same proxy is not locked out by the first one's guesses.
    assert not locked_out(client, 99, "203.0.113.2")
