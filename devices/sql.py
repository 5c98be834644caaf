"""The devices app's raw SQL: the statements the ORM cannot write as cheaply, and how they run.

- the device protocol's hot statements (a provisioning poll, a check-in), run through a cursor that
  PostgreSQL plans once (`fetchone`), and the stale sweep's marking statement (`sweep_run`);
- the admin's row estimate for large tables (`table_rows_estimate`).

The rules these statements carry stay in one place each: status, event and command-status values
come from the model choices (`literal`), the open-commands list from `devices.command_queue`'s
constants (`open_commands_sql`, beside `commands_open`), and the stale-time rule is written here
twice, side by side, in Python and in SQL (`stale_check_next`, `stale_check_next_sql`).
`tests/devices/test_paths_agree.py` runs each statement against its portable ORM twin.

Only quoted table and column names and our own constants are interpolated into the statements'
text; every value from outside is a parameter.
"""

import json
import logging
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from functools import cache

from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from django.utils.dateparse import parse_datetime

from .command_queue import COMMANDS_PER_ANSWER, OPEN_COMMAND_FIELDS, OPEN_COMMANDS_ORDER, OPEN_STATUSES
from .models import Command, Device, DeviceEvent, DeviceEventType, DeviceStatus, Product, Reading

logger = logging.getLogger(__name__)


def literal(value: str) -> str:
    """One of our constants (a model choice) as an SQL string literal.

    A literal rather than a parameter where a partial index's condition must be seen to hold
    (`status = 'online'`, `status IN ('pending', 'delivered')`): the generic plan of a prepared
    statement cannot prove that a parameter equals the index's constant. Never for outside input.
    """
    return "'" + str(value).replace("'", "''") + "'"


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# The cursor plumbing ------------------------------------------------------------------------------

if is_psycopg3:
    import psycopg

    class _PreparingCursor(psycopg.Cursor):
        """Server-side binding, and every statement prepared (Django turns automatic preparing off)."""

        def execute(self, query, params=None, *, prepare=True, binary=None):
            return super().execute(query, params, prepare=prepare, binary=binary)


_kept = threading.local()


def _kept_cursor(raw_connection):
    """This thread's preparing cursor on its current connection, kept between requests: a new
    cursor per statement would rebuild its adapter caches every time."""
    cursor = getattr(_kept, "cursor", None)
    if cursor is None or cursor.connection is not raw_connection or cursor.closed:
        cursor = _kept.cursor = _PreparingCursor(raw_connection)
    return cursor


def fetchone(sql, params):
    """Runs one statement and returns its first row, through a cursor PostgreSQL plans once.

    Django binds parameters client-side and never prepares, so PostgreSQL would plan the check-in
    statement (five tables, their indexes) on every call: that planning costs more than running
    it. A server-binding psycopg cursor that prepares every statement it runs keeps the plan;
    Django still translates its errors and, when it logs queries, wraps it to log them. psycopg prepares nothing on a
    connection whose prepare_threshold is None (Django's default), so the settings give it one
    (DATABASE_PREPARED_STATEMENTS). Connection poolers in transaction mode need prepared-statement
    support (PgBouncer ≥ 1.22, max_prepared_statements; docs/operations.md, Scaling).

    Instead of Django's per-request health check (a `SELECT 1` round trip before the first query),
    a statement that fails on a dead persistent connection outside any transaction is retried once
    on a new connection (the statements here are single autocommit statements, safe to repeat).
    """
    db = connections[DEFAULT_DB_ALIAS]  # one thread-local lookup instead of one per attribute
    if db.vendor != "postgresql" or not is_psycopg3:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    for attempt in (1, 2):
        try:
            db.ensure_connection()
            if db.queries_logged:  # tests counting queries, DEBUG
                with db.make_debug_cursor(_PreparingCursor(db.connection)) as cursor:
                    cursor.execute(sql, params)
                    return cursor.fetchone()
            cursor = _kept_cursor(db.connection)
            with db.wrap_database_errors:
                cursor.execute(sql, params)
                return cursor.fetchone()
        except OperationalError:
            if attempt == 2 or db.in_atomic_block or db.is_usable():
                raise
            logger.warning("device.db_reconnect")
            db.close()


# The stale-time rule, in Python and in SQL --------------------------------------------------------
# Side by side so they change together: the portable check-in calls `stale_check_next`, the
# PostgreSQL check-in statement embeds `stale_check_next_sql`; both are built from these constants.

# A check-in keeps the device's next look while at least this share of the threshold is left.
STALE_CHECK_KEPT_WHILE_LEFT = 0.5


def stale_check_next(*, old_status, stale_check_at, now, offline_after):
    """When the stale sweep should look at a device that checks in now: kept while the device was
    online and at least half its product's threshold is left, else a threshold from now.

    Keeping it most of the time is what makes a check-in a HOT update on PostgreSQL (no indexed
    column changes); the sweep gives a device it looks at too early its next look."""
    if old_status == DeviceStatus.ONLINE and stale_check_at >= now + timedelta(
        seconds=offline_after * STALE_CHECK_KEPT_WHILE_LEFT
    ):
        return stale_check_at
    return now + timedelta(seconds=offline_after)


def stale_check_next_sql(*, old_status, stale_check_at, now, offline_after) -> str:
    """`stale_check_next` as an SQL expression over the given SQL expressions (columns, parameters)."""
    online = literal(DeviceStatus.ONLINE)
    kept_while = f"interval '{STALE_CHECK_KEPT_WHILE_LEFT!r} second'"
    return (
        f"CASE WHEN {old_status} = {online} AND {stale_check_at} >= {now} + {offline_after} * {kept_while} "
        f"THEN {stale_check_at} ELSE {now} + {offline_after} * interval '1 second' END"
    )


# The open commands, in SQL ------------------------------------------------------------------------


def open_commands_sql(*, device_id, now) -> str:
    """The JSON array of a device's open commands, as devices.command_queue.commands_open lists them
    (its Python twin: same statuses, expiry, order, limit and fields, from the same constants);
    NULL when there are none. `device_id` and `now` are SQL expressions."""
    q = connection.ops.quote_name
    columns = {name: q(Command._meta.get_field(name).column) for name in (*OPEN_COMMAND_FIELDS, OPEN_COMMANDS_ORDER)}
    fields = ", ".join(f"{literal(name)}, c.{columns[name]}" for name in OPEN_COMMAND_FIELDS)
    statuses = ", ".join(literal(status) for status in OPEN_STATUSES)
    order = columns[OPEN_COMMANDS_ORDER]
    return f"""(SELECT json_agg(json_build_object({fields}) ORDER BY c.{order})
          FROM (SELECT * FROM {_table(Command)}
                 WHERE device_id = {device_id} AND status IN ({statuses}) AND expires_at > {now}
                 ORDER BY {order} LIMIT {int(COMMANDS_PER_ANSWER)}) AS c)"""  # noqa: S608


def _commands_from_json(device_id, open_commands) -> list[Command]:
    """The commands `open_commands_sql` returned, as unsaved instances with the fields a device is
    handed (those `commands_open` loads)."""
    commands = []
    for fields in open_commands or ():
        command = Command(device_id=device_id, **fields)
        command.expires_at = parse_datetime(fields["expires_at"])
        commands.append(command)
    return commands


# Provisioning poll --------------------------------------------------------------------------------


@cache
def poll_sql() -> str:
    return (
        f"SELECT d.id, d.factory_key_digest, d.owner_id, d.token_used_at IS NOT NULL, p.poll_cap "  # noqa: S608
        f"FROM {_table(Device)} d INNER JOIN {_table(Product)} p ON p.id = d.product_id WHERE d.serial = %s"
    )


def poll_row(serial):
    """(device id, factory key digest, owner id, token used, poll cap) of `serial`; None if unknown.
    The hot path of a factory of unclaimed devices polling: one prepared SELECT."""
    return fetchone(poll_sql(), [serial])


# Check-in -----------------------------------------------------------------------------------------


# How a check-in names its device: by its token's digest (HTTP), or by its serial (MQTT: the broker
# verified the device's certificate, whose CN is the serial) while the device has a certificate in
# force (a reset or a revocation clears it, so a session the broker has not ended yet is refused
# here). Over MQTT the portal does not see the device's address: last_ip stays as it was.
CHECKIN_BY = {
    "token": ("d.token_digest = %(key)s", True),
    "certificate": ("d.serial = %(key)s AND d.certificate_serial <> ''", False),
}


@cache
def checkin_sql(by="token") -> str:
    identity, sets_ip = CHECKIN_BY[by]
    set_ip = " last_ip = %(ip)s," if sets_ip else ""
    device, reading, event, product = (_table(m) for m in (Device, Reading, DeviceEvent, Product))
    online = literal(DeviceStatus.ONLINE)
    # One round trip. `old` is the row as it was before this statement (same snapshot), which
    # tells whether the device comes back online. The statement is its own transaction
    # (autocommit), so set_config(…, true) decides how this check-in alone commits: waiting for
    # the WAL flush costs more than the statement (settings.DEVICE_CHECKIN_SYNCHRONOUS_COMMIT).
    # Two check-ins of one device racing could both see it offline and both record device.online:
    # harmless, consumers are idempotent.
    # stale_check_at moves only when half the product's offline threshold has passed since it was
    # set (or the device was not online): the other check-ins change no indexed column, so
    # PostgreSQL updates the row in place without touching the table's indexes (HOT). In SET,
    # d.status is still the status before this check-in.
    next_look = stale_check_next_sql(
        old_status="d.status", stale_check_at="d.stale_check_at", now="%(now)s", offline_after="p.offline_after"
    )
    # The device.online event's data is built here, where the old status is known:
    # {"previous_status": <the old status>}, as the portable path writes it.
    return f"""
WITH dev AS (
    UPDATE {device} AS d
       SET last_seen_at = %(now)s,{set_ip} status = {online}, "values" = %(values)s::jsonb,
           token_used_at = COALESCE(d.token_used_at, %(now)s),
           stale_check_at = {next_look}
      FROM {device} AS old, {product} AS p
     WHERE {identity} AND old.id = d.id AND p.id = d.product_id
    RETURNING d.id, d.name, p.checkin_interval, old.status AS old_status, old.token_used_at IS NULL AS first_use
), reading AS (
    INSERT INTO {reading} (device_id, recorded_at, "values")
    SELECT id, %(now)s, %(values)s::jsonb FROM dev
), events AS (
    INSERT INTO {event} (id, device_id, type, data, device_name, created_at)
    SELECT %(data_event_id)s::uuid, id, {literal(DeviceEventType.DATA)}, %(data)s::jsonb, name, %(now)s FROM dev
    UNION ALL
    SELECT %(online_event_id)s::uuid, id, {literal(DeviceEventType.ONLINE)},
           jsonb_build_object('previous_status', old_status), name, %(now)s
      FROM dev WHERE old_status <> {online}
)
SELECT dev.id, dev.old_status, dev.first_use, dev.checkin_interval,
       set_config('synchronous_commit', %(synchronous_commit)s, true),
       {open_commands_sql(device_id="dev.id", now="%(now)s")}
  FROM dev
"""  # noqa: S608


def checkin_run(*, values, ip, now, data, synchronous_commit: bool, digest=None, serial=None):
    """Runs the check-in statement: (device id, old status, first use, check-in interval, open
    commands) of the device whose token has `digest` (or, by certificate, whose serial is `serial`),
    None when no device has it. `data` is the device.data event's."""
    by, key = ("token", digest) if serial is None else ("certificate", serial)
    # The event ids are chosen here, so a retried statement that had in fact run fails on the
    # primary key instead of recording the check-in twice.
    row = fetchone(
        checkin_sql(by),
        {
            "now": now,
            "ip": ip,
            "values": json.dumps(values),
            "key": key,
            "data_event_id": uuid.uuid4(),
            "online_event_id": uuid.uuid4(),
            "data": json.dumps(data),
            "synchronous_commit": "on" if synchronous_commit else "off",
        },
    )
    if row is None:
        return None
    device_id, old_status, first_use, interval, _synchronous_commit, open_commands = row
    return device_id, old_status, first_use, interval, _commands_from_json(device_id, open_commands)


@cache
def checkin_batch_sql() -> str:
    """Many check-ins by certificate (MQTT) in one statement: `checkin_sql("certificate")` for each
    row of the input arrays (one row per device: the caller splits repeats of a device), built from
    the same parts (the next look, the events, the open commands). A device the input names but
    that has no certificate in force returns no row."""
    device, reading, event, product = (_table(m) for m in (Device, Reading, DeviceEvent, Product))
    online = literal(DeviceStatus.ONLINE)
    identity, _sets_ip = CHECKIN_BY["certificate"]
    next_look = stale_check_next_sql(
        old_status="d.status", stale_check_at="d.stale_check_at", now="%(now)s", offline_after="p.offline_after"
    )
    return f"""
WITH input AS (
    SELECT * FROM unnest(%(serials)s::text[], %(values)s::jsonb[], %(data)s::jsonb[], %(data_ids)s::uuid[],
                         %(online_ids)s::uuid[]) AS i(key, vals, data, data_event_id, online_event_id)
), dev AS (
    UPDATE {device} AS d
       SET last_seen_at = %(now)s, status = {online}, "values" = i.vals,
           token_used_at = COALESCE(d.token_used_at, %(now)s),
           stale_check_at = {next_look}
      FROM input AS i, {device} AS old, {product} AS p
     WHERE {identity.replace("%(key)s", "i.key")} AND old.id = d.id AND p.id = d.product_id
    RETURNING d.id, d.name, d.serial, p.checkin_interval, old.status AS old_status,
              old.token_used_at IS NULL AS first_use, i.vals, i.data, i.data_event_id, i.online_event_id
), reading AS (
    INSERT INTO {reading} (device_id, recorded_at, "values")
    SELECT id, %(now)s, vals FROM dev
), events AS (
    INSERT INTO {event} (id, device_id, type, data, device_name, created_at)
    SELECT data_event_id, id, {literal(DeviceEventType.DATA)}, data, name, %(now)s FROM dev
    UNION ALL
    SELECT online_event_id, id, {literal(DeviceEventType.ONLINE)},
           jsonb_build_object('previous_status', old_status), name, %(now)s
      FROM dev WHERE old_status <> {online}
)
SELECT dev.serial, dev.id, dev.old_status, dev.first_use, dev.checkin_interval,
       set_config('synchronous_commit', %(synchronous_commit)s, true),
       {open_commands_sql(device_id="dev.id", now="%(now)s")}
  FROM dev
"""  # noqa: S608


def checkin_batch_run(*, checkins, now, data, synchronous_commit: bool) -> dict:
    """Runs the batch statement for `checkins` ((serial, values), one per device; `data` the
    device.data event of each): {serial: (device id, old status, first use, interval, open
    commands)} for the devices it checked in."""
    with connection.cursor() as cursor:
        cursor.execute(
            checkin_batch_sql(),
            {
                "now": now,
                "serials": [serial for serial, _values in checkins],
                "values": [json.dumps(values) for _serial, values in checkins],
                "data": [json.dumps(d) for d in data],
                "data_ids": [uuid.uuid4() for _ in checkins],
                "online_ids": [uuid.uuid4() for _ in checkins],
                "synchronous_commit": "on" if synchronous_commit else "off",
            },
        )
        rows = cursor.fetchall()
    return {
        serial: (device_id, old_status, first_use, interval, _commands_from_json(device_id, open_commands))
        for serial, device_id, old_status, first_use, interval, _synchronous_commit, open_commands in rows
    }


# The stale sweep ----------------------------------------------------------------------------------


@cache
def sweep_sql() -> str:
    device, product = _table(Device), _table(Product)
    online, offline = literal(DeviceStatus.ONLINE), literal(DeviceStatus.OFFLINE)
    # The due devices come from the partial index device_online_stale_check (its condition is
    # status = 'online', hence the literal): with nothing due the scan ends at once, and otherwise
    # it reads only the due devices, whatever the fleet's size. A due device is marked offline when
    # its product's threshold has passed (the portable path's filter, devices.stale._mark_sqlite);
    # one that checked in meanwhile is only given its next look (the moment it would turn stale).
    # FOR UPDATE re-reads a row that a check-in changed after this statement began, and the SET
    # expressions see that version; SKIP LOCKED passes over a device checking in right now.
    # `= ANY(ARRAY(…))` makes the update itself primary-key lookups; a join with the subquery
    # lets the planner hash-join against a scan of the whole table.
    # The device.offline events are recorded by the caller from the rows returned (one INSERT).
    stale = "d.last_seen_at < %(now)s - p.offline_after * interval '1 second'"
    return f"""
UPDATE {device} AS d
   SET status = CASE WHEN {stale} THEN {offline} ELSE d.status END,
       stale_check_at = CASE WHEN {stale} THEN d.stale_check_at
                             ELSE COALESCE(d.last_seen_at, %(now)s) + p.offline_after * interval '1 second' END
  FROM {product} AS p
 WHERE p.id = d.product_id AND d.status = {online} AND d.id = ANY(ARRAY(
        SELECT s.id
          FROM {device} AS s
         WHERE s.status = {online} AND s.stale_check_at <= %(now)s
         LIMIT %(limit)s
           FOR UPDATE OF s SKIP LOCKED))
RETURNING d.id, d.owner_id, d.last_seen_at, d.name, d.status = {offline} AS went_offline
"""  # noqa: S608


def sweep_run(now, *, limit) -> list[tuple]:
    """Runs the sweep's marking statement: (device id, owner id, last seen, name, went offline) of
    each device it looked at (at most `limit`)."""
    with connection.cursor() as cursor:
        cursor.execute(sweep_sql(), {"now": now, "limit": limit})
        return cursor.fetchall()


# The admin ----------------------------------------------------------------------------------------


def table_rows_estimate(db, table) -> int | None:
    """The planner's estimate of `table`'s rows on PostgreSQL connection `db` (pg_class.reltuples,
    kept fresh by autovacuum); None when there is none."""
    with db.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return row[0] if row else None


# Chart buckets -------------------------------------------------------------------------------------

# A value at or beyond this magnitude has no float (an integer of hundreds of digits, which JSON
# allows): it is left out of charts (tests/devices/test_device_charts.py buckets the same in Python).
NUMBER_LIMIT = 1e308


def reading_buckets_run(readings, *, keys, start: int, width: int) -> list[tuple]:
    """Per time bucket of `width` seconds from `start` (Unix seconds), each key's count, min, max
    and average: rows (bucket, count₀, min₀, max₀, avg₀, count₁, …), in bucket order, the figures
    floats; a key's count is 0 in a bucket where it has no number.

    `readings` is the Reading queryset to read (one device, the range, bounded by
    `access.history_since`): its own statement becomes the subquery, so who may see what stays
    decided there. One statement for every key: each row is read once, whatever the charts.
    The bucket of a time t is floor((t - start) / width) on both databases: PostgreSQL from
    date_part('epoch') (a float8; extract() would be numeric, slower), SQLite from strftime('%s')
    (whole seconds: with whole `start` and `width`, the same bucket)."""
    vendor = connection.vendor
    inner, inner_params = readings.values("recorded_at", "values").query.sql_with_params()
    n = len(keys)
    aggregates = ", ".join(f"count(n{i}), min(n{i}), max(n{i}), avg(n{i})" for i in range(n))
    if vendor == "postgresql":
        # Each key's number: its JSON value looked up once (j), jsonb_typeof first (a cast of text,
        # "n/a", would fail the statement), then as numeric, which holds every JSON number, so that
        # an integer of hundreds of digits is compared with the limit instead of failing a cast.
        # OFFSET 0 keeps each level from being folded into the next: the planner would otherwise
        # sort whole rows and work each number out again for every aggregate.
        values = ", ".join(f'r."values" -> %s AS j{i}' for i in range(n))
        numbers = ", ".join(f"CASE WHEN jsonb_typeof(j{i}) = %s THEN j{i}::numeric END AS m{i}" for i in range(n))
        # The aggregates are numeric's too: a float8 cast per row goes through text (slower).
        floats = ", ".join(f"CASE WHEN abs(m{i}) < {NUMBER_LIMIT!r} THEN m{i} END AS n{i}" for i in range(n))
        sql = (
            f"SELECT b, {aggregates} FROM (SELECT b, {floats} FROM (SELECT b, {numbers} FROM ("  # noqa: S608
            f"SELECT floor((date_part('epoch', r.recorded_at) - %s) / %s)::int AS b, {values} "
            f"FROM ({inner}) AS r OFFSET 0) AS y OFFSET 0) AS z OFFSET 0) AS x GROUP BY b ORDER BY b"
        )
        # in the order of the placeholders in the text: the type compared with, the bucket, the lookups
        params = [*(["number"] * n), start, width, *keys, *inner_params]
    else:
        # SQLite: a number too large for an integer is a real, infinity past the limit; text is left out.
        v = 'json_extract(r."values", %s)'
        numbers = ", ".join(
            f"CASE WHEN json_type(r.\"values\", %s) IN ('integer', 'real') AND abs({v}) < {NUMBER_LIMIT!r} "
            f"THEN {v} END AS n{i}"
            for i in range(n)
        )
        sql = (
            f"SELECT b, {aggregates} FROM (SELECT (CAST(strftime('%%s', r.recorded_at) AS INTEGER) - %s) / %s AS b, "  # noqa: S608
            f"{numbers} FROM ({inner}) AS r) AS x GROUP BY b ORDER BY b"
        )
        # keys cannot hold a double quote (ProductField.key's validator): the path quotes them
        params = [start, width, *(p for key in keys for p in ['$."' + key + '"'] * 3), *inner_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        # numeric aggregates arrive as Decimal: floats on both databases, for the charts' arithmetic
        return [tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in cursor.fetchall()]
