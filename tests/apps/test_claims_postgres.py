"""On PostgreSQL: two workers holding the same message never both take the same attempt."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from apps.models import Delivery
from apps.services import sending

from ..factories import ApplicationFactory

pytestmark = pytest.mark.services


def _race(delivery_ids, lease, workers=4):
    barrier = threading.Barrier(workers)
    taken = []

    def claim():
        try:
            barrier.wait()
            taken.extend(d.pk for d in sending._claim(delivery_ids, lease, timezone.now()))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return taken


def test_a_duplicated_message_sends_each_delivery_once(requires_postgres, transactional_db, owner):
    application = ApplicationFactory(owner=owner, callback_url="https://hooks.example.com/x")
    lease = timezone.now()
    for _ in range(20):
        deliveries = Delivery.objects.bulk_create(
            [Delivery(application=application, event_type="ping", next_attempt_at=lease) for _ in range(10)]
        )
        ids = [delivery.pk for delivery in deliveries]
        taken = _race(ids, lease)
        assert sorted(taken) == sorted(ids)  # every delivery once, none twice
        assert set(Delivery.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
