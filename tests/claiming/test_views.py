"""The claim page, the QR link, the device page and its actions, as an owner's browser sees them."""

import contextlib
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from claiming import limits, services, transfers
from claiming.models import OwnershipEvent, OwnershipEventKind, Transfer
from devices.models import Command, Device, Reading
from portal.errors import ApplicationError, NotFound
from tests.factories import ClaimCodeFactory, DeviceFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

CLAIM = "/claim/"


@pytest.fixture
def code():
    return ClaimCodeFactory(raw_code="ABCDE12345")


# --- the QR link ---


def test_qr_link_redirects_to_the_prefilled_claim_form(client):
    response = client.get("/c/abcde12345")
    assert response.status_code == HTTPStatus.FOUND
    assert response.url == "/claim/?code=ABCDE-12345"


def test_qr_link_keeps_the_code_through_log_in(client):
    response = client.get("/c/ABCDE-12345", follow=True)
    last_url, _status = response.redirect_chain[-1]
    assert last_url.startswith(reverse("account_login"))
    assert "next=/claim/%3Fcode%3DABCDE-12345" in last_url


def test_login_page_offers_sign_up_with_the_same_next(client):
    response = client.get(reverse("account_login") + "?next=/claim/%3Fcode%3DABCDE-12345")
    assert b"/accounts/signup/?next=%2Fclaim%2F%3Fcode%3DABCDE-12345" in response.content


def test_verification_link_carries_next(client, settings):
    client.post(
        reverse("account_signup") + "?next=/claim/%3Fcode%3DABCDE-12345",
        {
            "email": "new@example.com",
            "password1": "a long pass phrase 9",
            "password2": "a long pass phrase 9",
            "next": "/claim/?code=ABCDE-12345",
        },
    )
    assert len(mail.outbox) == 1
    assert "next=%2Fclaim%2F%3Fcode%3DABCDE-12345" in mail.outbox[0].body


def test_verification_in_another_browser_still_lands_on_the_claim_form(client, code):
    DeviceFactory(claim_code=code)
    client.post(
        reverse("account_signup"),
        {
            "email": "new@example.com",
            "password1": "a long pass phrase 9",
            "password2": "a long pass phrase 9",
            "next": "/claim/?code=ABCDE-12345",
        },
    )
    link = next(line for line in mail.outbox[0].body.splitlines() if "/accounts/confirm-email/" in line).strip()
    path = link.split("testserver", 1)[1]
    client.cookies.clear()  # the mail app's browser: no session
    page = client.get(path)
    assert b'name="next" value="/claim/?code=ABCDE-12345"' in page.content
    response = client.post(path.split("?")[0], {"next": "/claim/?code=ABCDE-12345"}, follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("account_login") + "?next=/claim/")
    response = client.post(
        response.redirect_chain[-1][0],
        {"login": "new@example.com", "password": "a long pass phrase 9"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/claim/?code=ABCDE-12345"
    assert b'value="ABCDE-12345"' in response.content


# --- the claim page ---


def test_claim_page_offers_code_and_pin(owner_client):
    response = owner_client.get(CLAIM)
    assert response.status_code == HTTPStatus.OK
    assert b'name="code"' in response.content
    assert b'name="serial"' in response.content and b'name="pin"' in response.content


def test_code_in_the_query_prefills_the_form_and_names_the_device(owner_client, code):
    device = DeviceFactory(claim_code=code)
    response = owner_client.get(CLAIM + "?code=abcde-12345")
    assert response.status_code == HTTPStatus.OK
    assert b'value="abcde-12345"' in response.content
    assert device.serial.encode() in response.content


def test_claiming_a_single_device_code_takes_one_press(owner_client, owner, code):
    device = DeviceFactory(claim_code=code)
    response = owner_client.post(CLAIM, {"method": "code", "code": "abcde 12345"})
    assert response.status_code == HTTPStatus.FOUND
    assert response.url == reverse("devices:list")
    assert Device.objects.get(pk=device.pk).owner == owner


def test_batch_code_lists_its_unowned_devices_all_ticked(owner_client, code, other_owner):
    batch = [DeviceFactory(claim_code=code) for _ in range(3)]
    taken = DeviceFactory(claim_code=code, owner=other_owner)
    response = owner_client.post(CLAIM, {"method": "code", "code": "ABCDE12345"})
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    for device in batch:
        assert f'name="serials" value="{device.serial}" checked' in html
    assert taken.serial not in html
    assert not Device.objects.filter(owner__isnull=False).exclude(pk=taken.pk).exists()


def test_batch_code_claims_the_ticked_devices(owner_client, owner, code):
    first, second = DeviceFactory(claim_code=code), DeviceFactory(claim_code=code)
    response = owner_client.post(
        CLAIM, {"method": "code", "code": "ABCDE12345", "picked": "True", "serials": [second.serial]}
    )
    assert response.status_code == HTTPStatus.FOUND
    assert list(Device.objects.filter(owner=owner)) == [second]
    assert Device.objects.get(pk=first.pk).owner is None


def test_batch_code_with_nothing_ticked_asks_to_tick(owner_client, code):
    DeviceFactory(claim_code=code), DeviceFactory(claim_code=code)
    response = owner_client.post(CLAIM, {"method": "code", "code": "ABCDE12345", "picked": "True"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"Tick at least one device" in response.content


def test_wrong_code_unknown_serial_and_wrong_pin_show_the_same_words(owner_client):
    DeviceFactory(serial="PIN-1", raw_pin="2468")
    answers = [
        owner_client.post(CLAIM, {"method": "code", "code": "ZZZZZZZZZZ"}),
        owner_client.post(CLAIM, {"method": "pin", "serial": "NOPE", "pin": "2468"}),
        owner_client.post(CLAIM, {"method": "pin", "serial": "PIN-1", "pin": "0000"}),
    ]
    for response in answers:
        assert response.status_code == HTTPStatus.BAD_REQUEST
        assert services.INVALID_MESSAGE.encode() in response.content


def test_already_claimed_is_a_409_with_a_clear_message(owner_client, code, other_owner):
    DeviceFactory(claim_code=code, owner=other_owner)
    response = owner_client.post(CLAIM, {"method": "code", "code": "ABCDE12345"})
    assert response.status_code == HTTPStatus.CONFLICT
    assert b"already been claimed" in response.content


def test_pin_claim_from_the_page(owner_client, owner):
    device = DeviceFactory(serial="PIN-9", raw_pin="2468")
    response = owner_client.post(CLAIM, {"method": "pin", "serial": "PIN-9", "pin": "2468"})
    assert response.status_code == HTTPStatus.FOUND
    device.refresh_from_db()
    assert device.owner == owner and device.claimable is False


def test_too_many_failures_answer_429_with_a_human_page(owner_client):
    for _ in range(limits.FAILURES_PER_USER[0]):
        owner_client.post(CLAIM, {"method": "code", "code": "ZZZZZZZZZZ"})
    response = owner_client.post(CLAIM, {"method": "code", "code": "ZZZZZZZZZZ"})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert int(response["Retry-After"]) > 0
    assert b"Too many attempts" in response.content
    assert b"<html" in response.content


def test_looking_a_code_up_from_the_link_counts_as_a_guess(owner_client):
    for _ in range(limits.FAILURES_PER_USER[0]):
        owner_client.get(CLAIM + "?code=ZZZZZZZZZZ")
    assert owner_client.get(CLAIM + "?code=ZZZZZZZZZZ").status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_locked_serial_answers_429_on_the_page(owner_client):
    DeviceFactory(serial="LOCK-9", raw_pin="2468")
    for n in range(limits.PIN_FAILURES_PER_SERIAL[0]):
        with contextlib.suppress(services.ClaimError):
            services.device_claim_by_pin(user=UserFactory(), serial="LOCK-9", pin="0000", ip=f"203.0.113.{n}")
    response = owner_client.post(CLAIM, {"method": "pin", "serial": "LOCK-9", "pin": "2468"})
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_unverified_account_is_told_to_verify_and_cannot_claim(client, code):
    DeviceFactory(claim_code=code)
    user = UserFactory(verified=False)
    client.force_login(user)
    page = client.get(CLAIM + "?code=ABCDE12345")
    assert b"Verify your email address first" in page.content
    response = client.post(CLAIM, {"method": "code", "code": "ABCDE12345"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not Device.objects.filter(owner=user).exists()


def test_claim_page_needs_log_in(client):
    response = client.get(CLAIM)
    assert response.status_code == HTTPStatus.FOUND
    assert response.url.startswith(reverse("account_login"))


# --- the device page ---


def test_device_page_shows_values_chart_commands_and_history(owner_client, owner):
    device = DeviceFactory(owner=owner, values={"temperature": 21.5, "door": "closed"}, status="online")
    now = timezone.now()
    Reading.objects.bulk_create(
        [
            Reading(device=device, recorded_at=now - timedelta(minutes=10 - i), values={"temperature": 20 + i})
            for i in range(10)
        ]
    )
    Command.objects.create(device=device, name="reboot", expires_at=now + timedelta(hours=1))
    OwnershipEvent.objects.create(device=device, kind=OwnershipEventKind.CLAIMED, actor=owner, owner=owner)
    response = owner_client.get(reverse("devices:detail", args=[device.pk]))
    html = response.content.decode()
    assert response.status_code == HTTPStatus.OK
    assert "temperature" in html and "closed" in html
    assert "<svg" in html and '<path class="chart-line"' in html  # the chart's line (issue 19: a path)
    assert "reboot" in html and "Pending" in html
    assert "Claimed" in html and "by you" in html


def test_device_page_does_not_name_earlier_owners(owner_client, owner, other_owner):
    device = DeviceFactory(owner=owner)
    OwnershipEvent.objects.create(
        device=device, kind=OwnershipEventKind.CLAIMED, actor=other_owner, owner=other_owner, ip="203.0.113.9"
    )
    html = owner_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    assert "charlie" not in html and "203.0.113.9" not in html
    assert "another account" in html


def test_owner_sends_a_command(owner_client, owner):
    device = DeviceFactory(owner=owner)
    response = owner_client.post(
        reverse("devices:command", args=[device.pk]), {"name": "set_interval", "set_interval-params.seconds": "30"}
    )
    assert response.status_code == HTTPStatus.FOUND
    command = Command.objects.get(device=device)
    assert (command.name, command.params, command.sent_by_user) == ("set_interval", {"seconds": 30}, owner)


def test_command_with_bad_params_is_a_form_error(owner_client, owner):
    # A command declared by name alone takes its parameters as a JSON object.
    device = DeviceFactory(owner=owner, product=ProductFactory(commands=["open_door"]))
    response = owner_client.post(
        reverse("devices:command", args=[device.pk]), {"name": "open_door", "open_door-params": "[1"}
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not Command.objects.exists()


@pytest.mark.parametrize("seconds", ["", "abc", "0"])
def test_command_params_that_do_not_fit_are_a_params_field_error(owner_client, owner, seconds):
    device = DeviceFactory(owner=owner)
    response = owner_client.post(
        reverse("devices:command", args=[device.pk]), {"name": "set_interval", "set_interval-params.seconds": seconds}
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.context["command_form"].errors["params.seconds"] == [
        "seconds is required: a whole number from 1 to 86 400, required."
        if not seconds
        else "seconds must be a whole number from 1 to 86 400."
    ]
    assert "from 1 to 86 400" in response.content.decode()
    assert not Command.objects.exists()


def test_the_command_form_lists_each_commands_parameters(owner_client, owner):
    device = DeviceFactory(owner=owner)
    html = owner_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    # Each command its own form (issue 19), each parameter a field with its rule beside it.
    assert "Set the check-in interval" in html
    assert "Seconds between check-ins. A whole number from 1 to 86 400, required." in html


def test_owner_turns_pin_claiming_on_with_a_new_pin(owner_client, owner, other_owner):
    device = DeviceFactory(owner=owner, claimable=False)
    response = owner_client.post(
        reverse("claiming:device-pin", args=[device.pk]), {"pin": "Sell2024", "claimable": "on"}
    )
    assert response.status_code == HTTPStatus.FOUND
    services.device_claim_by_pin(user=other_owner, serial=device.serial, pin="Sell2024", ip="192.0.2.1")
    assert Device.objects.get(pk=device.pk).owner == other_owner


def test_pin_claiming_on_without_a_pin_is_a_form_error(owner_client, owner):
    device = DeviceFactory(owner=owner, claimable=False)
    response = owner_client.post(reverse("claiming:device-pin", args=[device.pk]), {"pin": "", "claimable": "on"})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"Set a PIN" in response.content


# --- reset ---


def test_reset_asks_for_confirmation_first(owner_client, owner):
    device = DeviceFactory(owner=owner)
    response = owner_client.get(reverse("claiming:device-reset", args=[device.pk]))
    assert response.status_code == HTTPStatus.OK
    assert b"claim code keeps working" in response.content
    assert Device.objects.get(pk=device.pk).owner == owner


def test_reset_releases_the_device_and_the_owner_loses_it(owner_client, owner):
    device = DeviceFactory(owner=owner)
    response = owner_client.post(reverse("claiming:device-reset", args=[device.pk]))
    assert response.status_code == HTTPStatus.FOUND
    assert Device.objects.get(pk=device.pk).owner is None
    assert owner_client.get(reverse("devices:detail", args=[device.pk])).status_code == HTTPStatus.NOT_FOUND


# --- transfer ---


def _offer(owner_client, device, to="bob@example.com"):
    with_callbacks = owner_client.post(reverse("claiming:device-transfer", args=[device.pk]), {"to_email": to})
    return with_callbacks


@pytest.fixture
def bob(db):
    return UserFactory(email="bob@example.com", username="bob")


def _link_path(message):
    line = next(line for line in message.body.splitlines() if "/transfer/" in line)
    return "/" + line.strip().split("/", 3)[3]


def test_transfer_emails_a_link_and_stores_only_its_digest(owner_client, owner, django_capture_on_commit_callbacks):
    device = DeviceFactory(owner=owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = _offer(owner_client, device)
    assert response.status_code == HTTPStatus.FOUND
    assert mail.outbox[0].to == ["bob@example.com"]
    token = _link_path(mail.outbox[0]).rstrip("/").rsplit("/", 1)[1]
    transfer = Transfer.objects.get(device=device)
    assert transfer.token_digest == transfers.transfer_token_digest(token)
    assert token not in transfer.token_digest
    assert timedelta(days=6, hours=23) < transfer.expires_at - timezone.now() <= timedelta(days=7)


def test_accepting_moves_the_device_and_the_old_owner_loses_access(
    owner_client, owner, bob, client, django_capture_on_commit_callbacks
):
    device = DeviceFactory(owner=owner)
    with django_capture_on_commit_callbacks(execute=True):
        _offer(owner_client, device)
    path = _link_path(mail.outbox[0])
    from django.test import Client

    bob_client = Client()
    bob_client.force_login(bob)
    assert bob_client.get(path).status_code == HTTPStatus.OK
    response = bob_client.post(path)
    assert response.status_code == HTTPStatus.FOUND
    device.refresh_from_db()
    assert device.owner == bob
    assert owner_client.get(reverse("devices:detail", args=[device.pk])).status_code == HTTPStatus.NOT_FOUND
    assert OwnershipEvent.objects.filter(device=device, kind=OwnershipEventKind.TRANSFERRED, owner=bob).exists()


def test_only_the_offered_address_may_accept(owner, other_owner, bob):
    device = DeviceFactory(owner=owner)
    _transfer, token = transfers.transfer_offer(device=device, to_email="bob@example.com", actor=owner, ip=None)
    with pytest.raises(ApplicationError) as caught:
        transfers.transfer_accept(token=token, user=other_owner, ip=None)
    assert caught.value.status == HTTPStatus.FORBIDDEN
    assert Device.objects.get(pk=device.pk).owner == owner


def test_cancelled_transfer_link_stops_working(owner_client, owner, bob):
    device = DeviceFactory(owner=owner)
    _transfer, token = transfers.transfer_offer(device=device, to_email="bob@example.com", actor=owner, ip=None)
    response = owner_client.post(reverse("claiming:transfer-cancel", args=[device.pk]))
    assert response.status_code == HTTPStatus.FOUND
    with pytest.raises(NotFound):
        transfers.transfer_accept(token=token, user=bob, ip=None)
    assert Device.objects.get(pk=device.pk).owner == owner


def test_expired_transfer_link_stops_working(client, owner, bob):
    device = DeviceFactory(owner=owner)
    transfer, token = transfers.transfer_offer(device=device, to_email="bob@example.com", actor=owner, ip=None)
    Transfer.objects.filter(pk=transfer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(bob)
    response = client.post(reverse("claiming:transfer-accept", args=[token]))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert b"expired" in response.content
    assert Device.objects.get(pk=device.pk).owner == owner


def test_a_new_offer_replaces_the_open_one(owner, bob):
    device = DeviceFactory(owner=owner)
    _first, old_token = transfers.transfer_offer(device=device, to_email="bob@example.com", actor=owner, ip=None)
    transfers.transfer_offer(device=device, to_email="carol@example.com", actor=owner, ip=None)
    with pytest.raises(NotFound):
        transfers.transfer_get_by_token(token=old_token)


def test_transfer_link_after_a_reset_does_not_work(owner, bob):
    device = DeviceFactory(owner=owner)
    _transfer, token = transfers.transfer_offer(device=device, to_email="bob@example.com", actor=owner, ip=None)
    services.device_release(device=device, actor=owner, ip=None)
    with pytest.raises(NotFound):
        transfers.transfer_accept(token=token, user=bob, ip=None)


def test_unknown_transfer_token_is_a_friendly_404(client, bob):
    client.force_login(bob)
    response = client.get(reverse("claiming:transfer-accept", args=["not-a-token"]))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert b"does not work" in response.content


def test_device_page_renders_whatever_numbers_the_device_checked_in(owner_client, owner, client):
    from tests.devices.protocol_support import checkin, provision_token

    device = DeviceFactory(owner=owner)
    token = provision_token(client, device)
    for values in ({"t": 1.5}, {"t": int("9" * 400)}, {"t": 1e308}, {"t": -1e308}, {"t": 2}):
        assert checkin(client, token, values).status_code == HTTPStatus.OK
    response = owner_client.get(reverse("devices:detail", args=[device.pk]))
    assert response.status_code == HTTPStatus.OK
    assert '<path class="chart-line"' in response.content.decode()
