"""A database outage answers 503 with Retry-After (never a 500 with a trace), and nothing is lost
that got a 200. Drill: a real PostgreSQL connection pointed at a port where nothing listens."""

from http import HTTPStatus

import pytest
from django.db import connection


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def database_down(settings, transactional_db, requires_postgres, logged_in):
    """Every new connection of this thread goes to a dead port, as during a database restart."""
    settings.DEBUG = False
    real = connection.settings_dict.copy()
    connection.close()
    connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": "1", "NAME": "unreachable"})
    yield
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(real)


@pytest.mark.parametrize("path", ["/devices/", "/claim/", "/apps/"])
def test_pages_answer_503_while_the_database_is_down(client, database_down, path):
    client.raise_request_exception = False
    response = client.get(path)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == "5"
    assert b"cannot reach its database" in response.content
    assert b"Traceback" not in response.content


def test_device_endpoints_answer_503_json_while_the_database_is_down(client, database_down):
    client.raise_request_exception = False
    response = client.post(
        "/device/v1/checkin", {"values": {"t": 1}}, content_type="application/json",
        HTTP_AUTHORIZATION="Bearer some-token",
    )
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["error"]["code"] == "service_unavailable"


def test_api_answers_503_json_while_the_database_is_down(client, database_down):
    client.raise_request_exception = False
    response = client.get("/api/v1/devices", HTTP_AUTHORIZATION="Basic eDp5")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["error"]["code"] == "service_unavailable"


def test_an_ordinary_bug_is_still_a_500_without_a_trace(rf):
    from portal.views import server_error

    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        response = server_error(rf.get("/devices/"))
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert b"Something went wrong" in response.content
    assert b"a bug" not in response.content


def test_check_ins_across_an_outage_lose_nothing_that_got_200(
    client, owner, transactional_db, requires_postgres, settings
):
    """Before, during and after the database is unreachable: 200, then 503, then 200 again by
    itself (no restart of the portal); every check-in that got 200 is stored."""
    from devices.models import Reading
    from devices.services import token_digest

    from ..factories import DeviceFactory

    settings.DEBUG = False
    device = DeviceFactory(owner=owner, token_digest=token_digest("outage-token"))
    client.raise_request_exception = False

    def check_in(n):
        return client.post("/device/v1/checkin", {"values": {"n": n}}, content_type="application/json",
                           HTTP_AUTHORIZATION="Bearer outage-token").status_code

    real = connection.settings_dict.copy()
    statuses = [check_in(0), check_in(1)]
    connection.close()
    connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": "1", "NAME": "unreachable"})
    try:
        statuses += [check_in(2), check_in(3)]
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(real)
    statuses += [check_in(4), check_in(5)]

    assert statuses == [200, 200, 503, 503, 200, 200]
    assert sorted(r.values["n"] for r in Reading.objects.filter(device=device)) == [0, 1, 4, 5]
