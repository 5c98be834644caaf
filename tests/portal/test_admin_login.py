"""The admin's log-in is limited like the owners': per address and per account, past the limit 429."""

from http import HTTPStatus

import pytest
from django.urls import reverse

from ..factories import UserFactory

LOGIN = "/admin/login/"


@pytest.fixture
def oem(db):
    user = UserFactory(username="oem-admin", email="oem-admin@example.com", is_staff=True, is_superuser=True)
    user.set_password("correct horse battery")
    user.save()
    return user


def _log_in(client, username, password, address="203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def test_forty_wrong_passwords_then_the_right_one_is_refused(client, oem):
    answers = [_log_in(client, "oem-admin", f"guess-{n}", address=f"203.0.113.{n}").status_code for n in range(40)]
    assert answers[:5] == [HTTPStatus.OK] * 5  # the form again, with its error
    assert set(answers[5:]) == {HTTPStatus.TOO_MANY_REQUESTS}
    response = _log_in(client, "oem-admin", "correct horse battery")
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "Too many failed log-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert client.get(reverse("admin:index")).status_code == HTTPStatus.FOUND  # still not logged in


def test_one_address_guessing_many_accounts_is_refused(client, oem):
    answers = [_log_in(client, f"someone-{n}", "guess").status_code for n in range(12)]
    assert answers[:10] == [HTTPStatus.OK] * 10
    assert answers[10:] == [HTTPStatus.TOO_MANY_REQUESTS] * 2
    assert _log_in(client, "oem-admin", "correct horse battery").status_code == HTTPStatus.TOO_MANY_REQUESTS
    # Another address is not held back by this one's guesses.
    assert _log_in(client, "oem-admin", "correct horse battery", address="198.51.100.1").status_code == HTTPStatus.FOUND


def test_the_right_password_does_not_count_as_a_guess(client, oem):
    for _ in range(8):
        assert _log_in(client, "oem-admin", "correct horse battery").status_code == HTTPStatus.FOUND
        client.post(reverse("admin:logout"))
    assert _log_in(client, "oem-admin", "correct horse battery").status_code == HTTPStatus.FOUND


def test_behind_the_proxy_the_client_address_counts(client, oem, settings):
    settings.TRUSTED_PROXY_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    for n in range(10):
        client.post(LOGIN, {"username": f"x{n}", "password": "g"}, REMOTE_ADDR="10.0.0.1",
                    HTTP_X_FORWARDED_FOR="203.0.113.9")
    refused = client.post(LOGIN, {"username": "y", "password": "g"}, REMOTE_ADDR="10.0.0.1",
                          HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    other = client.post(LOGIN, {"username": "oem-admin", "password": "correct horse battery"},
                        REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert other.status_code == HTTPStatus.FOUND
