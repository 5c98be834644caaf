"""Hostile input: a burst of wrong claim codes, random claim codes, random check-in bodies, random
CSV files, and open redirects. Nothing answers 500; a refused input changes nothing."""

import json
import string
from http import HTTPStatus

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from devices import codes
from devices.models import Device, DeviceEvent, Reading
from devices.registration import RegistrationRefused, registration_plan

from ..factories import ClaimCodeFactory, DeviceFactory, UserFactory

FUZZ = hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_a_burst_of_wrong_codes_is_throttled_and_others_still_claim(client, owner, db):
    """1,000 wrong codes from one address: 429 once past the limit, and another owner elsewhere still claims."""
    client.force_login(owner)
    statuses = []
    # The limits count in fixed windows on the clock: a burst that crossed a window's end would start
    # counting afresh halfway through, so the clock stands still while it runs.
    with time_machine.travel(timezone.now(), tick=False):
        for i in range(1000):
            response = client.post(reverse("claiming:claim"), {"method": "code", "code": f"WRONG{i:05d}"},
                                   REMOTE_ADDR="198.51.100.7")
            statuses.append(response.status_code)
    first_429 = statuses.index(HTTPStatus.TOO_MANY_REQUESTS)
    assert 0 < first_429 <= 30
    assert set(statuses[first_429:]) == {HTTPStatus.TOO_MANY_REQUESTS}
    assert set(statuses[:first_429]) <= {HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND}
    print(f"\nburst: {len(statuses)} wrong codes, 429 from attempt {first_429 + 1}")

    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    someone = UserFactory()
    client.force_login(someone)
    response = client.post(reverse("claiming:claim"), {"method": "code", "code": code.raw_code},
                           REMOTE_ADDR="203.0.113.20")
    assert response.status_code == HTTPStatus.FOUND
    device.refresh_from_db()
    assert device.owner == someone


@given(st.text(max_size=80))
def test_normalising_any_text_never_fails_and_is_idempotent(text):
    normal = codes.normalize(text)
    assert codes.normalize(normal) == normal
    assert "-" not in normal and " " not in normal
    assert codes.digest(text) == codes.digest(normal)


@given(st.text(alphabet=string.ascii_letters + string.digits + " -", max_size=40))
def test_display_then_normalise_gives_the_code_back(text):
    assert codes.normalize(codes.display(text)) == codes.normalize(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture
def provisioned(db, owner):
    from devices.services import token_digest

    device = DeviceFactory(owner=owner, token_digest=token_digest("fuzz-token"))
    return device


@FUZZ
@given(body=st.one_of(json_values.map(json.dumps), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_check_in_body_is_answered_without_500_and_a_refusal_changes_nothing(client, provisioned, body):
    before = (Reading.objects.count(), DeviceEvent.objects.count())
    response = client.generic("POST", "/device/v1/checkin", body, content_type="application/json",
                              HTTP_AUTHORIZATION="Bearer fuzz-token")
    assert response.status_code < 500
    if response.status_code != HTTPStatus.OK:
        assert response.json()["error"]["code"]
        assert (Reading.objects.count(), DeviceEvent.objects.count()) == before


csv_cell = st.text(alphabet=string.printable.replace("\r", ""), max_size=12)


@FUZZ
@given(rows=st.lists(st.lists(csv_cell, min_size=1, max_size=6), max_size=6), header=st.sampled_from([
    "serial", "serial,factory_key,claim_code,pin,claimable", "serial,colour", "", "factory_key",
]))
def test_any_csv_is_planned_or_refused_whole(db, rows, header):
    text = header + "\n" + "\n".join(",".join(cells) for cells in rows)
    before = Device.objects.count()
    try:
        registration_plan(data=text.encode())
    except RegistrationRefused as refused:
        assert str(refused)
    assert Device.objects.count() == before  # planning writes nothing


OFF_SITE = ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_refuses_to_send_anyone_off_site(client, owner, target):
    response = client.post(
        reverse("account_login") + f"?next={target}",
        {"login": owner.email, "password": "correct horse battery staple", "next": target},
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/")
    assert not response["Location"].startswith(("//", "/\\"))
    assert "evil.example" not in response["Location"]
