"""The ownership services: every claim rule, as the owner's form, the admin and the API see it."""

from http import HTTPStatus

import pytest
from allauth.account.models import EmailAddress

from claiming import limits, services, transfers
from claiming.models import OwnershipEvent, OwnershipEventKind
from claiming.services import AlreadyClaimed, ClaimError, EmailNotVerified
from devices.command_queue import command_send
from devices.models import Command, CommandStatus, Device, DeviceEvent, DeviceEventType
from devices.protocol.services import device_checkin, device_provision
from devices.selectors import command_list_for_device, reading_list_for_device
from devices.services import token_digest
from portal.errors import Conflict, Throttled, ValidationError
from tests.factories import ClaimCodeFactory, DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db

IP = "198.51.100.7"


@pytest.fixture
def code():
    return ClaimCodeFactory()


@pytest.fixture
def coded_device(code):
    return DeviceFactory(claim_code=code)


def claim_code(user, code, **kwargs):
    return services.device_claim_by_code(user=user, code=code, ip=kwargs.pop("ip", IP), **kwargs)


# --- claim by code ---


def test_claim_by_code_makes_the_user_the_owner(owner, coded_device, code):
    devices = claim_code(owner, code.raw_code)
    coded_device.refresh_from_db()
    assert devices == [coded_device]
    assert coded_device.owner == owner
    assert coded_device.owned_since is not None


def test_claim_writes_an_ownership_event_and_a_device_event(owner, coded_device, code):
    claim_code(owner, code.raw_code)
    event = OwnershipEvent.objects.get(device=coded_device)
    assert (event.kind, event.actor, event.owner, event.ip) == (OwnershipEventKind.CLAIMED, owner, owner, IP)
    assert DeviceEvent.objects.filter(device=coded_device, type=DeviceEventType.CLAIMED).count() == 1


@pytest.mark.parametrize(
    "typed",
    [
        lambda c: c.lower(),
        lambda c: f"{c[:5]}-{c[5:]}",
        lambda c: f"  {c[:3]} {c[3:7]} {c[7:]} ",
        lambda c: c.replace("0", "O").replace("1", "l"),
    ],
    ids=["lowercase", "hyphen", "spaces", "O-for-0-and-l-for-1"],
)
def test_code_is_normalised_before_lookup(owner, typed):
    code = ClaimCodeFactory(raw_code="0123456789")
    device = DeviceFactory(claim_code=code)
    assert claim_code(owner, typed("0123456789")) == [device]


def test_batch_code_claims_every_unowned_device_when_none_named(owner, code):
    batch = [DeviceFactory(claim_code=code) for _ in range(3)]
    taken = DeviceFactory(claim_code=code, owner=UserFactory())
    claimed = claim_code(owner, code.raw_code)
    assert {d.pk for d in claimed} == {d.pk for d in batch}
    taken.refresh_from_db()
    assert taken.owner != owner


def test_batch_code_claims_only_the_named_serials(owner, code):
    first, second, third = (DeviceFactory(claim_code=code) for _ in range(3))
    claimed = claim_code(owner, code.raw_code, serials=[first.serial, third.serial])
    assert {d.serial for d in claimed} == {first.serial, third.serial}
    assert Device.objects.get(pk=second.pk).owner is None


def test_serial_not_covered_by_the_code_is_refused(owner, code, coded_device):
    stranger = DeviceFactory()
    with pytest.raises(ClaimError) as caught:
        claim_code(owner, code.raw_code, serials=[stranger.serial])
    assert caught.value.code == "claim_serial_not_covered"
    assert Device.objects.get(pk=stranger.pk).owner is None


def test_owned_device_answers_already_claimed(owner, other_owner, code):
    DeviceFactory(claim_code=code, owner=other_owner)
    with pytest.raises(AlreadyClaimed) as caught:
        claim_code(owner, code.raw_code)
    assert caught.value.status == HTTPStatus.CONFLICT


def test_own_device_answers_already_yours(owner, code):
    DeviceFactory(claim_code=code, owner=owner)
    with pytest.raises(Conflict) as caught:
        claim_code(owner, code.raw_code)
    assert caught.value.code == "already_yours"


def test_expired_code_says_so(owner, code, coded_device):
    from datetime import timedelta

    from django.utils import timezone

    code.expires_at = timezone.now() - timedelta(minutes=1)
    code.save()
    with pytest.raises(ClaimError) as caught:
        claim_code(owner, code.raw_code)
    assert caught.value.code == "claim_code_expired"


def test_unverified_email_cannot_claim(coded_device, code):
    user = UserFactory(verified=False)
    with pytest.raises(EmailNotVerified):
        claim_code(user, code.raw_code)
    assert Device.objects.get(pk=coded_device.pk).owner is None


def test_claim_code_stays_valid_after_reset(owner, other_owner, coded_device, code):
    claim_code(owner, code.raw_code)
    coded_device.refresh_from_db()
    services.device_release(device=coded_device, actor=owner, ip=IP)
    assert claim_code(other_owner, code.raw_code)[0].owner == other_owner


# --- the same message ---


def test_wrong_code_unknown_serial_and_wrong_pin_read_the_same(owner):
    DeviceFactory(serial="PIN-1", raw_pin="2468")
    messages = []
    for attempt in (
        lambda: claim_code(owner, "ZZZZZ-ZZZZZ"),
        lambda: services.device_claim_by_pin(user=owner, serial="NO-SUCH-SERIAL", pin="2468", ip=IP),
        lambda: services.device_claim_by_pin(user=owner, serial="PIN-1", pin="9999", ip=IP),
    ):
        with pytest.raises(ClaimError) as caught:
            attempt()
        messages.append((caught.value.code, caught.value.message, caught.value.status))
    assert len(set(messages)) == 1
    assert messages[0][2] == HTTPStatus.BAD_REQUEST


def test_device_with_pin_claiming_off_reads_like_a_wrong_pin(owner):
    DeviceFactory(serial="PIN-OFF", raw_pin="2468", claimable=False)
    with pytest.raises(ClaimError) as caught:
        services.device_claim_by_pin(user=owner, serial="PIN-OFF", pin="2468", ip=IP)
    assert caught.value.message == services.INVALID_MESSAGE


def test_device_without_pin_cannot_be_claimed_by_pin(owner):
    DeviceFactory(serial="NO-PIN")
    with pytest.raises(ClaimError) as caught:
        services.device_claim_by_pin(user=owner, serial="NO-PIN", pin="", ip=IP)
    assert caught.value.message == services.INVALID_MESSAGE


# --- claim by serial + PIN ---


def test_pin_claim_gives_the_device_and_turns_claimable_off(owner):
    device = DeviceFactory(serial="PIN-2", raw_pin="Ab12cd")
    claimed = services.device_claim_by_pin(user=owner, serial=" PIN-2 ", pin="Ab12cd", ip=IP)
    device.refresh_from_db()
    assert claimed == device
    assert device.owner == owner
    assert device.claimable is False
    assert OwnershipEvent.objects.get(device=device).kind == OwnershipEventKind.CLAIMED


def test_pin_claim_of_an_owned_device_says_already_claimed(owner, other_owner):
    DeviceFactory(serial="PIN-3", raw_pin="2468", owner=other_owner, claimable=False)
    with pytest.raises(AlreadyClaimed):
        services.device_claim_by_pin(user=owner, serial="PIN-3", pin="2468", ip=IP)


def test_owner_hands_over_with_a_new_pin(owner, other_owner):
    device = DeviceFactory(serial="PIN-4", owner=other_owner, claimable=False, token_digest=token_digest("old"))
    services.device_pin_set(device=device, pin="NEWPIN42", claimable=True, actor=other_owner, ip=IP)
    services.device_claim_by_pin(user=owner, serial="PIN-4", pin="NEWPIN42", ip=IP)
    device.refresh_from_db()
    assert device.owner == owner
    assert device.claimable is False
    assert device.token_digest is None  # the previous owner's credentials are gone
    kinds = set(DeviceEvent.objects.filter(device=device).values_list("type", flat=True))
    assert {DeviceEventType.RELEASED, DeviceEventType.CLAIMED} <= kinds


def test_pin_set_needs_a_pin_to_turn_claiming_on(owner):
    device = DeviceFactory(owner=owner, claimable=False)
    with pytest.raises(ValidationError) as caught:
        services.device_pin_set(device=device, pin="", claimable=True, actor=owner, ip=IP)
    assert "pin" in caught.value.fields


@pytest.mark.parametrize("pin", ["12", "has space", "ünï1234", "x" * 33])
def test_pin_set_refuses_a_bad_pin(owner, pin):
    device = DeviceFactory(owner=owner)
    with pytest.raises(ValidationError):
        services.device_pin_set(device=device, pin=pin, claimable=True, actor=owner, ip=IP)


def test_pin_set_records_an_ownership_event(owner):
    device = DeviceFactory(owner=owner, claimable=False)
    services.device_pin_set(device=device, pin="1234abcd", claimable=True, actor=owner, ip=IP)
    event = OwnershipEvent.objects.get(device=device)
    assert (event.kind, event.actor, event.ip) == (OwnershipEventKind.PIN_CHANGED, owner, IP)
    device.refresh_from_db()
    assert device.claimable and device.pin_digest


# --- limits ---


def test_failed_guesses_per_user_end_in_429(owner):
    limit, _window = limits.FAILURES_PER_USER
    for n in range(limit):
        with pytest.raises(ClaimError):
            claim_code(owner, f"WRONG{n:05d}", ip=f"203.0.113.{n}")
    with pytest.raises(Throttled) as caught:
        claim_code(owner, "WRONG99999", ip="203.0.113.200")
    assert caught.value.status == HTTPStatus.TOO_MANY_REQUESTS


def test_limit_holds_even_for_the_right_code(owner, code, coded_device):
    limit, _window = limits.FAILURES_PER_USER
    for n in range(limit):
        with pytest.raises(ClaimError):
            claim_code(owner, f"WRONG{n:05d}")
    with pytest.raises(Throttled):
        claim_code(owner, code.raw_code)
    assert Device.objects.get(pk=coded_device.pk).owner is None


def test_failed_guesses_per_ip_end_in_429():
    limit, _window = limits.FAILURES_PER_IP
    users = UserFactory.create_batch(limit // limits.FAILURES_PER_USER[0] + 1)
    attempts = 0
    for user in users:
        for _ in range(limits.FAILURES_PER_USER[0]):
            if attempts == limit:
                break
            with pytest.raises(ClaimError):
                claim_code(user, "WRONGWRONG")
            attempts += 1
    with pytest.raises(Throttled):
        claim_code(users[-1], "WRONGWRONG")


def test_attempts_turned_away_by_the_address_limit_do_not_count_against_the_user(owner):
    busy_address = "192.0.2.77"
    ip_limit, user_limit = limits.FAILURES_PER_IP[0], limits.FAILURES_PER_USER[0]
    for guesser in UserFactory.create_batch(ip_limit // user_limit):
        for _ in range(user_limit):
            with pytest.raises(ClaimError):
                claim_code(guesser, "WRONGWRONG", ip=busy_address)
    for _ in range(5):  # the owner behind that busy address is turned away, unjudged
        with pytest.raises(Throttled):
            claim_code(owner, "WRONGWRONG", ip=busy_address)
    # ... and still has every one of their own guesses elsewhere.
    for n in range(user_limit):
        with pytest.raises(ClaimError):
            claim_code(owner, f"WRONG{n:05d}", ip="203.0.113.5")
    with pytest.raises(Throttled):
        claim_code(owner, "WRONG99999", ip="203.0.113.5")


def test_successful_claims_do_not_count_as_failures(owner):
    for _ in range(limits.FAILURES_PER_USER[0] + 2):
        code = ClaimCodeFactory()
        DeviceFactory(claim_code=code)
        claim_code(owner, code.raw_code)


# --- release ---


def test_release_clears_owner_revokes_credentials_and_records_events(owner):
    device = DeviceFactory(owner=owner, token_digest=token_digest("t"), certificate_pem="PEM")
    services.device_release(device=device, actor=owner, ip=IP)
    device.refresh_from_db()
    assert device.owner is None and device.owned_since is None
    assert device.token_digest is None and device.certificate_pem == ""
    assert OwnershipEvent.objects.get(device=device).kind == OwnershipEventKind.RELEASED
    assert DeviceEvent.objects.filter(device=device, type=DeviceEventType.RELEASED).count() == 1


def test_release_removes_app_links(owner):
    from apps.models import Application, AppLink

    device = DeviceFactory(owner=owner)
    app = Application.objects.create(app_id="app-1", owner=owner, name="Dash", secret_encrypted="x", secret_digest="y")
    AppLink.objects.create(application=app, device=device)
    services.device_release(device=device, actor=owner, ip=IP)
    assert not AppLink.objects.filter(device=device).exists()


def test_release_voids_the_commands_still_open(owner):
    device = DeviceFactory(owner=owner)
    pending = command_send(device=device, name="reboot", sent_by_user=owner)
    done = command_send(device=device, name="identify", sent_by_user=owner)
    Command.objects.filter(pk=done.pk).update(status=CommandStatus.SUCCEEDED)
    services.device_release(device=device, actor=owner, ip=IP)
    assert dict(Command.objects.values_list("name", "status")) == {
        "reboot": CommandStatus.EXPIRED,
        "identify": CommandStatus.SUCCEEDED,
    }
    updates = DeviceEvent.objects.filter(device=device, type=DeviceEventType.COMMAND_UPDATED)
    assert updates.filter(data__command_id=str(pending.pk), data__status="expired").exists()


def test_the_next_owner_s_device_never_runs_the_previous_owner_s_commands(owner, user_factory):
    bob = user_factory(email="bob@example.com")
    device = DeviceFactory(owner=owner)
    command_send(device=device, name="reboot", sent_by_user=owner)
    _transfer, token = transfers.transfer_offer(device=device, to_email=bob.email, actor=owner, ip=None)
    transfers.transfer_accept(token=token, user=bob, ip=None)
    answer = device_provision(serial=device.serial, factory_key=device.raw_factory_key)
    assert answer["state"] == "claimed"
    assert device_checkin(token=answer["credentials"]["token"], values={}, ip=IP)["commands"] == []


def test_release_of_an_unowned_device_is_a_conflict(owner):
    with pytest.raises(Conflict):
        services.device_release(device=DeviceFactory(), actor=owner, ip=IP)


# --- pre-claim ---


def test_preclaim_for_a_verified_account_gives_the_devices_at_once(staff, owner):
    devices = DeviceFactory.create_batch(2)
    result = services.device_preclaim(devices=devices, email="ALICE@example.com", actor=staff)
    assert result == {"claimed": 2, "pending": 0, "skipped": 0}
    assert set(Device.objects.filter(owner=owner).values_list("pk", flat=True)) == {d.pk for d in devices}
    event = OwnershipEvent.objects.filter(device=devices[0]).get()
    assert (event.kind, event.actor, event.owner) == (OwnershipEventKind.PRE_CLAIMED, staff, owner)


def test_preclaim_skips_owned_devices(staff, other_owner):
    owned = DeviceFactory(owner=other_owner)
    result = services.device_preclaim(devices=[owned], email="new@example.com", actor=staff)
    assert result == {"claimed": 0, "pending": 0, "skipped": 1}


def test_preclaim_without_an_account_waits_for_verification(staff):
    device = DeviceFactory()
    result = services.device_preclaim(devices=[device], email="New.Person@example.com", actor=staff)
    assert result == {"claimed": 0, "pending": 1, "skipped": 0}
    device.refresh_from_db()
    assert device.owner is None
    assert device.preclaim_email == "new.person@example.com"


def test_preclaim_applies_when_the_address_is_verified(staff, rf):
    from allauth.account.signals import email_confirmed

    device = DeviceFactory()
    services.device_preclaim(devices=[device], email="new.person@example.com", actor=staff)
    user = UserFactory(email="New.Person@example.com", verified=False)
    address = EmailAddress.objects.get(user=user)
    address.verified = True
    address.save()
    email_confirmed.send(sender=EmailAddress, request=rf.get("/"), email_address=address)
    device.refresh_from_db()
    assert device.owner == user
    assert device.preclaim_email == ""


def test_preclaim_does_not_take_a_device_claimed_meanwhile(staff, owner, rf):
    device = DeviceFactory()
    services.device_preclaim(devices=[device], email="late@example.com", actor=staff)
    Device.objects.filter(pk=device.pk).update(owner=owner)
    user = UserFactory(email="late@example.com")
    assert services.device_preclaims_apply(user=user, email="late@example.com") == []
    assert Device.objects.get(pk=device.pk).owner == owner


def test_a_claim_by_the_pre_claimed_address_clears_the_preclaim(staff, code):
    device = DeviceFactory(claim_code=code)
    services.device_preclaim(devices=[device], email="someone.else@example.com", actor=staff)
    claim_code(UserFactory(email="someone.else@example.com"), code.raw_code)
    assert Device.objects.get(pk=device.pk).preclaim_email == ""


# --- a change of owner leaves nothing behind ---


def test_a_claim_by_code_turns_pin_claiming_off(owner, other_owner, code):
    # Imported labels often carry a code and a PIN: whoever claims by one must not lose it to the other.
    device = DeviceFactory(claim_code=code, raw_pin="2468")
    claim_code(owner, code.raw_code)
    assert Device.objects.get(pk=device.pk).claimable is False
    with pytest.raises(ClaimError):  # the PIN went with the claim: it reads as a wrong one
        services.device_claim_by_pin(user=other_owner, serial=device.serial, pin="2468", ip=IP)
    assert Device.objects.get(pk=device.pk).owner == owner


def test_a_preclaim_turns_pin_claiming_off(staff, owner):
    device = DeviceFactory(raw_pin="2468")
    services.device_preclaim(devices=[device], email=owner.email, actor=staff)
    device.refresh_from_db()
    assert (device.owner, device.claimable) == (owner, False)


def test_after_a_transfer_the_old_pin_cannot_take_the_device_back(owner, user_factory):
    bob = user_factory(email="bob@example.com")
    device = DeviceFactory(owner=owner, raw_pin="2468")  # claiming left on by the first owner
    _transfer, token = transfers.transfer_offer(device=device, to_email=bob.email, actor=owner, ip=None)
    transfers.transfer_accept(token=token, user=bob, ip=None)
    with pytest.raises(ClaimError):  # the PIN went with the transfer: it reads as a wrong one
        services.device_claim_by_pin(user=owner, serial=device.serial, pin="2468", ip=IP)
    assert Device.objects.get(pk=device.pk).owner == bob


@pytest.mark.parametrize("handover", ["transfer", "reset_and_claim", "new_pin"])
def test_the_next_owner_sees_nothing_the_device_did_for_the_previous_one(owner, user_factory, code, handover):
    bob = user_factory(email="bob@example.com")
    device = DeviceFactory(owner=owner, claim_code=code, name="Alice's garage")
    answer = device_provision(serial=device.serial, factory_key=device.raw_factory_key)
    device_checkin(token=answer["credentials"]["token"], values={"door": "open"}, ip="203.0.113.50")
    command_send(device=device, name="identify", sent_by_user=owner)
    if handover == "transfer":
        _transfer, token = transfers.transfer_offer(device=device, to_email=bob.email, actor=owner, ip=None)
        transfers.transfer_accept(token=token, user=bob, ip=None)
    elif handover == "reset_and_claim":
        services.device_release(device=Device.objects.get(pk=device.pk), actor=owner, ip=IP)
        claim_code(bob, code.raw_code)
    else:
        services.device_pin_set(
            device=Device.objects.get(pk=device.pk), pin="fresh123", claimable=True, actor=owner, ip=IP
        )
        services.device_claim_by_pin(user=bob, serial=device.serial, pin="fresh123", ip=IP)

    device = Device.objects.get(pk=device.pk)
    assert device.owner == bob
    assert (device.values, device.last_ip, device.name) == ({}, None, "")
    assert reading_list_for_device(device) == []
    assert command_list_for_device(device) == []
