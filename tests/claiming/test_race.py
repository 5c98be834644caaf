"""Twenty owners claim one device at the same moment: exactly one wins (PostgreSQL, real threads)."""

import threading
from http import HTTPStatus

import pytest
from django.db import connection

from claiming import services
from claiming.models import OwnershipEvent
from devices.models import Device, DeviceEvent, DeviceEventType
from tests.factories import ClaimCodeFactory, DeviceFactory, UserFactory

RACERS = 20


def _race(target, users):
    barrier = threading.Barrier(len(users))
    outcomes = [None] * len(users)

    def run(index, user):
        try:
            barrier.wait()
            outcomes[index] = ("won", target(user))
        except services.ClaimError as exc:
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
    assert all(exc.status == HTTPStatus.CONFLICT for kind, exc in outcomes if kind == "lost")
    assert OwnershipEvent.objects.filter(device=device).count() == 1
