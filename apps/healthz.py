"""`/healthz`: is the portal alive, and is its background work keeping up?

200 when every check is ok, 503 otherwise. The public hears only that (`{"status": "ok"}` or
"failing"), enough for load balancers and container health checks; staff sessions and
`Authorization: Bearer <HEALTHZ_TOKEN>` (monitoring) also get each check, the failing ones named,
and a few figures (backlogs say how busy the portal is). Even then no hostnames, addresses,
versions or error texts (those can carry connection strings). It costs two small indexed queries,
a cache read and a broker connect.

The checks: the database answers; the broker accepts a connection; beat is alive (the stale sweep
it runs every minute finished less than BEAT_LATE_AFTER ago); the webhook queue drains (no due
delivery has waited longer than DELIVERIES_LATE_AFTER for a worker).
"""

import hmac
import logging
from datetime import timedelta
from http import HTTPStatus

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from devices.stale import last_sweep_at

from .models import Delivery, DeliveryStatus
from .sql import database_answers

logger = logging.getLogger(__name__)

BEAT_LATE_AFTER = timedelta(minutes=3)
DELIVERIES_LATE_AFTER = timedelta(minutes=10)
# Counting stops here: a huge backlog must not make the health check slow.
DUE_COUNT_CAP = 10_000
BROKER_TIMEOUT_SECONDS = 2
# Before the first sweep of a fresh install, beat counts as late only this long after the first
# health check that found no sweep (the first beat run comes a minute after start).
_WAITING_SINCE_KEY = "health:beat-waiting-since"

OK = "ok"
FAILING = "failing"


@require_safe
@never_cache
def healthz(request):
    now = timezone.now()
    checks = {
        "database": _database_check(),
        "broker": _broker_check(),
        "beat": _beat_check(now),
        "deliveries": _deliveries_check(now),
    }
    failing = [name for name, check in checks.items() if check["status"] != OK]
    body = {"status": FAILING if failing else OK}
    if _may_see_figures(request):
        body["checks"] = checks
        if failing:
            body["failing"] = failing
    return JsonResponse(body, status=HTTPStatus.SERVICE_UNAVAILABLE if failing else HTTPStatus.OK)


# Backlogs and failure counts are the delivery log's figures: whoever may read that log.
FIGURES_PERMISSION = "apps.view_delivery"


def _may_see_figures(request):
    if request.user.is_authenticated and request.user.is_staff and request.user.has_perm(FIGURES_PERMISSION):
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.HEALTHZ_TOKEN
    return bool(expected) and scheme == "Bearer" and hmac.compare_digest(token.encode(), expected.encode())


def _failing(name, error, **figures):
    # The exception text stays in the log: it may name hosts or hold a connection string.
    logger.warning("health.failing", extra={"check": name, "error": error}, exc_info=True)
    return {"status": FAILING, "error": error, **figures}


def _database_check():
    try:
        database_answers()
    except DatabaseError:
        return _failing("database", "the database does not answer")
    return {"status": OK}


def _broker_check():
    from portal import celery_app

    try:
        with celery_app.connection_for_write() as broker:
            # One attempt, no sleeping between retries: a health check must answer fast.
            broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception:
        # kombu raises transport-specific errors (redis, socket, its own); any of them means the
        # broker cannot take tasks, which is what this check reports.
        return _failing("broker", "the task broker does not accept connections")
    return {"status": OK}


def _beat_check(now):
    try:
        last = last_sweep_at()
        if last is None:
            cache.add(_WAITING_SINCE_KEY, now.timestamp(), timeout=None)
            waiting_since = cache.get(_WAITING_SINCE_KEY, now.timestamp())
    except Exception:
        # The cache backend's own errors (redis, files): without it beat's heartbeat is unknown.
        return _failing("beat", "the cache holding beat's heartbeat does not answer")
    late_after = int(BEAT_LATE_AFTER.total_seconds())
    if last is None:
        waited = int(now.timestamp() - waiting_since)
        if waited > late_after:
            return _failing("beat", f"no stale sweep has run (waited {waited} s; late after {late_after} s)")
        return {"status": OK, "last_sweep_at": None, "age_seconds": None}
    age = int((now - last).total_seconds())
    if age > late_after:
        return _failing(
            "beat",
            f"the last stale sweep ran {age} s ago (late after {late_after} s)",
            last_sweep_at=last.isoformat(),
            age_seconds=age,
        )
    return {"status": OK, "last_sweep_at": last.isoformat(), "age_seconds": age}


def _deliveries_check(now):
    """Due deliveries: pending, their time come, their application not paused (a paused
    application's deliveries wait for its owner, not for a worker)."""
    due = Delivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=now, application__paused_at__isnull=True
    )
    try:
        # Oldest first on the partial index delivery_due; the cap bounds the count.
        figures = (
            due.order_by("next_attempt_at")
            .values("next_attempt_at")[:DUE_COUNT_CAP]
            .aggregate(due=Count("*"), oldest=Min("next_attempt_at"))
        )
    except DatabaseError:
        return _failing("deliveries", "the delivery queue cannot be read")
    waited = int((now - figures["oldest"]).total_seconds()) if figures["oldest"] else 0
    result = {"due": figures["due"], "due_capped": figures["due"] >= DUE_COUNT_CAP, "oldest_due_seconds": waited}
    late_after = int(DELIVERIES_LATE_AFTER.total_seconds())
    if waited > late_after:
        return _failing(
            "deliveries", f"a due delivery has waited {waited} s for a worker (late after {late_after} s)", **result
        )
    return {"status": OK, **result}
