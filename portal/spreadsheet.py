"""CSV files the portal writes end up in spreadsheets, which run a cell that begins with = + - @
(or a tab or carriage return before one) as a formula: such a cell is written with a leading
apostrophe, which spreadsheets read as "this is text"."""

import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Writer:
    def __init__(self, stream, **options):
        self._writer = csv.writer(stream, **options)

    def writerow(self, row):
        return self._writer.writerow([cell(value) for value in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def writer(stream, **options):
    """csv.writer, with every cell neutralised: use it for every CSV the portal hands out."""
    return _Writer(stream, **options)
