"""The apps app's raw SQL: what the ORM would write too slowly, and the health check's probe.

Only quoted table and column names and placeholders are interpolated into a statement's text;
every value, status values from the model choices included, is a parameter.
"""

from django.db import connection

from .models import Delivery, DeliveryStatus


def successes_write(deliveries, now) -> None:
    """One UPDATE for a batch of successes, per-row status code and latency in CASE expressions.

    Written by hand: QuerySet.bulk_update builds an expression tree per row and field, which cost
    more than the HTTP requests themselves.
    """
    quote = connection.ops.quote_name
    ids = [delivery.pk for delivery in deliveries]
    code_cases = " ".join("WHEN %s THEN %s" for _ in deliveries)
    latency_cases = " ".join("WHEN %s THEN %s" for _ in deliveries)
    table, pk, code, latency = (
        quote(name) for name in (Delivery._meta.db_table, "id", "last_status_code", "last_latency_ms")
    )
    assignments = ", ".join(
        [
            f"{quote('status')} = %s",
            f"{quote('next_attempt_at')} = NULL",
            f"{quote('last_error')} = ''",
            f"{quote('delivered_at')} = %s",
            f"{quote('last_attempt_at')} = %s",
            f"{code} = CASE {pk} {code_cases} END",
            f"{latency} = CASE {pk} {latency_cases} END",
        ]
    )
    placeholders = ", ".join("%s" for _ in ids)
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} IN ({placeholders})"  # noqa: S608
    moment = connection.ops.adapt_datetimefield_value(now)
    params = [DeliveryStatus.SUCCEEDED.value, moment, moment]
    params += [value for d in deliveries for value in (d.pk, d.last_status_code)]
    params += [value for d in deliveries for value in (d.pk, d.last_latency_ms)]
    params += ids
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def database_answers() -> None:
    """One round trip to the database (`/healthz`); raises DatabaseError when it does not answer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
