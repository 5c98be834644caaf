"""Retention: the daily prune of old readings and of handled events (`devices.tasks.prune_old_data`).

Rows go in batches of primary keys, each DELETE its own short transaction, so no statement holds
locks for long and check-ins carry on meanwhile.

An event is pruned once it is handled, older than EVENT_RETENTION, and no row of another app
refers to it any more. Those references (an application's Delivery rows) are found through the
model relations, not by importing the app that owns them: each app prunes its own rows by its
own rules, and an event still needed by a pending or failed delivery stays until that app lets
it go. A DELETE of an event therefore never cascades into another app's table.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .models import DeviceEvent, Reading

logger = logging.getLogger(__name__)

EVENT_RETENTION = timedelta(days=14)
BATCH_SIZE = 5000
# Well inside the task's soft time limit; what is left waits for the next day's run.
MAX_SECONDS = 180.0


def data_prune(*, now=None, batch_size=BATCH_SIZE, max_seconds=MAX_SECONDS) -> dict[str, int]:
    """Deletes readings older than READING_RETENTION_DAYS and handled, unreferenced events older
    than EVENT_RETENTION. Returns how many rows of each went."""
    now = now or timezone.now()
    deadline = time.monotonic() + max_seconds
    readings = Reading.objects.filter(recorded_at__lt=now - timedelta(days=settings.READING_RETENTION_DAYS))
    events = _unreferenced(DeviceEvent.objects.filter(handled_at__isnull=False, created_at__lt=now - EVENT_RETENTION))
    pruned = {
        "readings": _delete_in_batches(readings, batch_size=batch_size, deadline=deadline),
        "events": _delete_in_batches(events, batch_size=batch_size, deadline=deadline),
    }
    logger.info("retention.pruned", extra={**pruned, "complete": time.monotonic() < deadline})
    return pruned


def _unreferenced(queryset):
    """`queryset` without the rows that any other model still points to."""
    model = queryset.model
    for relation in model._meta.get_fields(include_hidden=True):
        if relation.auto_created and not relation.concrete and (relation.one_to_many or relation.one_to_one):
            referrers = relation.related_model._base_manager.filter(**{relation.field.name: OuterRef("pk")})
            queryset = queryset.filter(~Exists(referrers))
    return queryset


def _delete_in_batches(queryset, *, batch_size, deadline) -> int:
    total = 0
    while time.monotonic() < deadline:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        # The DELETE repeats the queryset's conditions, so a row that changed since it was read
        # (an event a delivery now refers to) stays. _raw_delete skips the collector, which
        # would load every row to look for cascades that the conditions already rule out.
        total += queryset.filter(pk__in=ids)._raw_delete(queryset.db)
        if len(ids) < batch_size:
            break
    return total
