"""The apps app's raw SQL: what the ORM would write too slowly (a batch of successes, the integrator
API's device page and its application lookup), and the health check's probe.

Only quoted table and column names and placeholders are interpolated into a statement's text;
every value, status values from the model choices included, is a parameter.
"""

from functools import cache

from django.db import connection

from devices.models import Device, Product

from .models import Application, AppLink, Delivery, DeliveryStatus


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


def application_by_app_id(app_id) -> Application | None:
    """The application with this App Id, or None. Every API request asks, so the statement is written
    once: the ORM built and compiled a query for it each time (with an ORDER BY name that a unique
    App Id does not need), which cost more CPU than running it. Read on every request, never kept:
    a replaced Secret or a pause holds from the next request on."""
    return next(iter(Application.objects.raw(_by_app_id_sql(), [app_id])), None)


@cache
def _by_app_id_sql() -> str:
    table = connection.ops.quote_name(Application._meta.db_table)
    return f"SELECT * FROM {table} WHERE app_id = %s"  # noqa: S608 - a quoted table name, the value a parameter


def linked_device_rows(conditions, params, *, columns, keys, descending, offset, limit) -> list[dict]:
    """A page of the integrator API's device list as one statement (PostgreSQL): devices `d` joined
    to their links `l` and products `p`, under `conditions` (SQL over those aliases with %s
    placeholders, `params` their values), by serial; each row a dict of `keys` (`columns` of the
    device, then the product's slug)."""
    order = "DESC" if descending else "ASC"
    where = " AND ".join(conditions)
    statement = f"{_rows_from(tuple(columns))} WHERE {where} ORDER BY d.serial {order} LIMIT %s OFFSET %s"
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, limit, offset])
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]


@cache
def _rows_from(columns) -> str:
    q = connection.ops.quote_name
    selected = ", ".join(f"d.{q(Device._meta.get_field(name).column)}" for name in columns)
    device, link, product = (q(model._meta.db_table) for model in (Device, AppLink, Product))
    return (
        f"SELECT {selected}, p.slug FROM {device} d "  # noqa: S608
        f"INNER JOIN {link} l ON l.device_id = d.id INNER JOIN {product} p ON p.id = d.product_id"
    )
