"""A device's readings of a chart's range as CSV, streamed: who may see the device downloads what
its charts show (the same range, the same bound on history), a row at a time.

Columns: the time (UTC, ISO 8601), each declared field of the product by key in its order, each key
of the latest values no field declares, and "other" (a JSON object of any further key a reading
carried: a device may have sent keys it no longer sends). Every cell goes through
`portal.spreadsheet`, so none runs as a formula in a spreadsheet.
"""

import json
import re

from portal import spreadsheet

from .models import Device

CHUNK = 2000  # readings fetched per round trip while streaming


class _Line:
    """csv.writer's file: hands back each line it is given instead of keeping it."""

    def write(self, line):
        return line


def readings_csv_columns(fields, values) -> list[str]:
    """The value columns: the declared fields' keys in order, then the latest values' other keys."""
    declared = [field.key for field in fields]
    return declared + sorted(key for key in (values or {}) if key not in set(declared))


def readings_csv_lines(readings, columns):
    """The CSV's lines (the header first) for `readings`, oldest first; a generator, so a month of
    readings every minute never sits in memory at once."""
    writer = spreadsheet.writer(_Line())
    known = set(columns)
    yield writer.writerow(["recorded_at", *columns, "other"])
    for recorded_at, values in readings.order_by("recorded_at").values_list("recorded_at", "values").iterator(CHUNK):
        values = values or {}
        other = {key: value for key, value in values.items() if key not in known}
        yield writer.writerow(
            [
                recorded_at.isoformat(),
                *(_cell(values.get(key)) for key in columns),
                json.dumps(other, ensure_ascii=False) if other else "",
            ]
        )


def _cell(value):
    # JSON's words for a switch, as the API writes them; None is an empty cell.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def readings_csv_filename(device: Device, range_key: str) -> str:
    """The download's name: the serial (letters, digits, - and _ only) and the range."""
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '-', device.serial)}-readings-{range_key}.csv"
