"""Twenty owners claim one device at the same moment: exactly one wins (PostgreSQL, real threads)."""

import threading
from http import HTTPStatus

import pytest
from django.db import connection

from claiming import limits, services
from claiming.models import OwnershipEvent
from devices.models import Device, DeviceEvent, DeviceEventType
from portal.errors import Throttled
from tests.factories import ClaimCodeFactory, DeviceFactory, UserFactory

RACERS = 20


def _race(target, users):
    barrier = threading.Barrier(len(users))
    outcomes = [None] * len(users)

    def run(index, user):
        try:
            barrier.wait()
            outcomes[index] = ("won", target(user))
        except (services.ClaimError, Throttled) as exc:
            outcomes[index] = ("lost", exc)
        except BaseException as exc:  # anything else is the bug this test looks for
            outcomes[index] = ("crashed", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, user)) for i, user in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.services
def test_twenty_claims_by_code_at_once_one_winner(transactional_db, requires_postgres):
    code = ClaimCodeFactory()
    device = DeviceFactory(claim_code=code)
    users = UserFactory.create_batch(RACERS)

    outcomes = _race(lambda user: services.device_claim_by_code(user=user, code=code.raw_code, ip="192.0.2.1"), users)

    assert [kind for kind, _ in outcomes].count("crashed") == 0, outcomes
    winners = [user for user, (kind, _) in zip(users, outcomes, strict=True) if kind == "won"]
    assert len(winners) == 1
    losers = [exc for kind, exc in outcomes if kind == "lost"]
    assert len(losers) == RACERS - 1
    assert all(exc.code == "already_claimed" and exc.status == HTTPStatus.CONFLICT for exc in losers)
    assert Device.objects.get(pk=device.pk).owner == winners[0]
    assert OwnershipEvent.objects.filter(device=device).count() == 1
    assert DeviceEvent.objects.filter(device=device, type=DeviceEventType.CLAIMED).count() == 1


@pytest.mark.services
def test_twenty_claims_by_pin_at_once_one_winner(transactional_db, requires_postgres):
    device = DeviceFactory(raw_pin="2468")
    users = UserFactory.create_batch(RACERS)

    outcomes = _race(
        lambda user: services.device_claim_by_pin(user=user, serial=device.serial, pin="2468", ip="192.0.2.1"),
        users,
    )

    assert [kind for kind, _ in outcomes].count("crashed") == 0, outcomes
    assert [kind for kind, _ in outcomes].count("won") == 1
    # Racers that read the device before the win hear 409; the win clears the PIN, so those that
    # read it after are answered as for a wrong PIN (400); racers past a limit are turned away
    # before their PIN is read (429). All are clear refusals.
    statuses = {exc.status for kind, exc in outcomes if kind == "lost"}
    assert statuses <= {HTTPStatus.BAD_REQUEST, HTTPStatus.CONFLICT, HTTPStatus.TOO_MANY_REQUESTS}
    assert OwnershipEvent.objects.filter(device=device).count() == 1
    # The losers did not reach the serial's own bound: a late racer is refused, not locked out.
    with pytest.raises(services.ClaimError):
        services.device_claim_by_pin(user=UserFactory(), serial=device.serial, pin="2468", ip="192.0.2.9")


@pytest.mark.services
def test_wrong_pins_sent_at_once_are_judged_no_more_than_the_limit_allows(
    transactional_db, requires_postgres, monkeypatch
):
    # A lower bound than the real one keeps the racers (one database connection each) few.
    monkeypatch.setattr(limits, "PIN_FAILURES_PER_SERIAL", (10, limits.DAY))
    device = DeviceFactory(raw_pin="2468")
    guessers = UserFactory.create_batch(40)
    addresses = {user.pk: f"203.0.113.{n}" for n, user in enumerate(guessers)}

    outcomes = _race(
        lambda user: services.device_claim_by_pin(user=user, serial=device.serial, pin="0000", ip=addresses[user.pk]),
        guessers,
    )

    assert [kind for kind, _ in outcomes].count("crashed") == 0, outcomes
    judged = [exc for kind, exc in outcomes if kind == "lost" and isinstance(exc, services.ClaimError)]
    turned_away = [exc for kind, exc in outcomes if kind == "lost" and isinstance(exc, Throttled)]
    assert len(judged) == limits.PIN_FAILURES_PER_SERIAL[0]
    assert len(turned_away) == len(guessers) - len(judged)
    with pytest.raises(Throttled):  # and the right PIN waits for the lock to end
        services.device_claim_by_pin(user=UserFactory(), serial=device.serial, pin="2468", ip="192.0.2.9")
