"""Server-rendered charts: a device's recent numeric values as SVG polylines, no JavaScript needed."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.html import format_html_join

WIDTH = 600
HEIGHT = 160
PAD_X = 4
PAD_Y = 10
MAX_SERIES = 6


def number_label(value) -> str:
    """At most two decimals, and none that are zero: 69.2, 18, 0.05; huge or tiny magnitudes in
    scientific notation (1.2e+300), so no label is hundreds of digits long."""
    if isinstance(value, float) and value and not 1e-2 <= abs(value) < 1e15:
        return f"{value:.3g}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


@dataclass
class Series:
    key: str
    points: str  # SVG polyline points, in the WIDTH x HEIGHT viewBox
    dots: list[tuple[float, float]]  # the last point, drawn as a marker
    minimum: float
    maximum: float
    latest: float
    count: int

    @property
    def labels(self):
        return {
            "min": number_label(self.minimum),
            "max": number_label(self.maximum),
            "latest": number_label(self.latest),
        }


def plottable_number(value) -> float | None:
    """The value as a float to plot, or None. A device may send any JSON number, and an integer of
    hundreds of digits has no float: it is left out of the chart (the page still shows it as text)."""
    # bool is an int in Python, but a switch is not a quantity worth a line.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _position(value, low, high) -> float:
    """Where `value` sits between `low` and `high`, from 0 to 1. Halving first keeps the spread
    of two floats near the limits (-1e308 and 1e308) finite."""
    spread = high / 2 - low / 2
    return (value / 2 - low / 2) / spread if spread else 0.0


def series_from_readings(readings) -> list[Series]:
    """One series per numeric key found in the readings (oldest first), at most MAX_SERIES."""
    if len(readings) < 2:
        return []
    keys = []
    for reading in reversed(readings):  # the newest readings decide which keys matter now
        for key, value in (reading.values or {}).items():
            if key not in keys and plottable_number(value) is not None:
                keys.append(key)
    keys = sorted(keys)[:MAX_SERIES]
    start = readings[0].recorded_at.timestamp()
    span = max(readings[-1].recorded_at.timestamp() - start, 1.0)
    result = []
    for key in keys:
        samples = [
            (reading.recorded_at.timestamp(), number)
            for reading in readings
            if (number := plottable_number((reading.values or {}).get(key))) is not None
        ]
        if len(samples) < 2:
            continue
        low = min(value for _, value in samples)
        high = max(value for _, value in samples)
        coords = [
            (
                round(PAD_X + (t - start) / span * (WIDTH - 2 * PAD_X), 1),
                round(HEIGHT - PAD_Y - _position(value, low, high) * (HEIGHT - 2 * PAD_Y), 1),
            )
            for t, value in samples
        ]
        result.append(
            Series(
                key=key,
                points=" ".join(f"{x},{y}" for x, y in coords),
                dots=[coords[-1]],
                minimum=low,
                maximum=high,
                latest=samples[-1][1],
                count=len(samples),
            )
        )
    return result


# --- charts of a time range, one per numeric field (the device page) -------------------------------
# The readings of the range arrive bucketed by the database (devices.sql.reading_buckets_run):
# never more buckets than BUCKETS, fewer than the chart's width in points, whatever the device sent.

# The ranges a chart shows (the `range` query parameter): seconds, and the words after "the last".
RANGES = {
    "1h": (3600, "hour"),
    "24h": (86_400, "24 hours"),
    "7d": (7 * 86_400, "7 days"),
    "30d": (30 * 86_400, "30 days"),
}
DEFAULT_RANGE = "24h"
CHART_WIDTH = 480
CHART_HEIGHT = 220
BUCKETS = 240  # two viewBox units per bucket
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 56, CHART_WIDTH - 12, 12, CHART_HEIGHT - 28
MAX_CHARTS = 6
# Ticks of the time axis per range: (step in seconds, label format).
TIME_TICKS = {
    "1h": (15 * 60, "%H:%M"),
    "24h": (6 * 3600, "%H:%M"),
    "7d": (86_400, "%a %d"),
    "30d": (7 * 86_400, "%d %b"),
}


@dataclass(frozen=True)
class Window:
    key: str
    words: str  # "24 hours": "the last 24 hours"
    start: int  # Unix seconds, whole
    end: int
    width: int  # seconds per bucket

    @property
    def since(self):
        return datetime.fromtimestamp(self.start, tz=UTC)

    @property
    def until(self):
        return datetime.fromtimestamp(self.end, tz=UTC)


def chart_window(range_key, now) -> Window:
    """The range `range_key` (an unknown one is the default) ending `now`, in whole seconds, cut
    into at most BUCKETS buckets of whole seconds (the bucket math is alike on both databases)."""
    if range_key not in RANGES:
        range_key = DEFAULT_RANGE
    seconds, words = RANGES[range_key]
    width = -(-seconds // BUCKETS)  # ceiling: BUCKETS buckets cover the range
    end = int(now.timestamp()) + 1
    return Window(range_key, words, end - seconds, end, width)


@dataclass
class ChartPoint:
    x: float
    y: float
    label: str  # "4 Dec 14:05 · 21.5 °C (min 21.2, max 21.9)"


@dataclass
class Chart:
    key: str
    label: str
    unit: str
    count: int
    minimum: str = ""
    maximum: str = ""
    average: str = ""
    path: str = ""  # the averages' line, broken where the device was silent
    band: list = None  # polygons of each run's min/max envelope
    points: list = None
    y_ticks: list = None  # [(y, label)]
    x_ticks: list = None  # [(x, label)]
    summary: str = ""  # the text alternative: the range's figures

    plot_left = PLOT_LEFT
    plot_right = PLOT_RIGHT
    plot_top = PLOT_TOP
    plot_bottom = PLOT_BOTTOM

    @property
    def points_svg(self):
        """The points as SVG circles, each with its value as a tooltip (read by static/js/charts.js
        too). Joined here rather than in a template loop: a 30-day chart has BUCKETS of them, and
        the loop took longer than the rest of the chart."""
        return format_html_join(
            "", '<circle cx="{}" cy="{}" r="3"><title>{}</title></circle>', ((p.x, p.y, p.label) for p in self.points)
        )


def _nice_step(span: float, count: int) -> float:
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= raw)


def _value_ticks(low, high) -> list[float]:
    """About five round values covering low..high (a flat series gets room around it)."""
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    try:
        step = _nice_step(high / 2 - low / 2, 2)  # halves: the spread of -1e308..1e308 stays finite
        ticks = [math.floor(low / step) * step]
        while ticks[-1] < high and len(ticks) < 12:
            ticks.append(ticks[-1] + step)
    except (OverflowError, ValueError):
        return [low, high]
    return ticks if all(math.isfinite(t) for t in ticks) and len(ticks) >= 2 else [low, high]


def _x(t: float, window: Window) -> float:
    return round(PLOT_LEFT + (t - window.start) / (window.end - window.start) * (PLOT_RIGHT - PLOT_LEFT), 1)


def _time_ticks(window: Window, tz) -> list[tuple[float, str]]:
    step, fmt = TIME_TICKS[window.key]
    offset = datetime.fromtimestamp(window.start, tz=UTC).astimezone(tz).utcoffset().total_seconds()
    first = math.ceil((window.start + offset) / step) * step - offset
    ticks = []
    t = first
    while t <= window.end:
        ticks.append((_x(t, window), datetime.fromtimestamp(t, tz=UTC).astimezone(tz).strftime(fmt)))
        t += step
    return ticks


def charts_from_buckets(fields, rows, *, window: Window, gap: int, tz, text) -> list[Chart]:
    """One chart per field of `fields` (ProductField-like: key, label, unit, expected_min,
    expected_max; in the order of the key columns of `rows`, from devices.sql.reading_buckets_run).
    `gap`: seconds between two buckets past which the line breaks (the device was silent);
    `text(field, value)` shows a value with its decimals and unit."""
    charts = []
    for i, field in enumerate(fields):
        key, label, unit = field.key, field.label, field.unit
        expected_min, expected_max = field.expected_min, field.expected_max
        # (the bucket's middle, (count, min, max, average)) of each bucket where this key has numbers
        buckets = [
            (window.start + row[0] * window.width + window.width / 2, row[1 + 4 * i : 5 + 4 * i])
            for row in rows
            if row[1 + 4 * i]
        ]
        count = sum(c for _, (c, _, _, _) in buckets)
        chart = Chart(key=key, label=label, unit=unit, count=count, band=[], points=[])
        chart.x_ticks = _time_ticks(window, tz)
        if not buckets:
            chart.y_ticks = []
            chart.summary = f"{label}: no readings in the last {window.words}."
            charts.append(chart)
            continue
        low = min(float(lo) for _, (_, lo, _, _) in buckets)
        high = max(float(hi) for _, (_, _, hi, _) in buckets)
        # The average of the range, from each bucket's average weighted by its count (exact).
        average = sum(float(avg) * c for _, (c, _, _, avg) in buckets) / count if count else 0.0
        if not math.isfinite(average):
            average = sum(float(avg) / count * c for _, (c, _, _, avg) in buckets)
        axis_low = min(low, expected_min) if expected_min is not None else low
        axis_high = max(high, expected_max) if expected_max is not None else high
        ticks = _value_ticks(axis_low, axis_high)
        axis_low, axis_high = ticks[0], ticks[-1]

        def y(value, low=axis_low, high=axis_high):
            position = min(max(_position(float(value), low, high), 0.0), 1.0)
            return round(PLOT_BOTTOM - position * (PLOT_BOTTOM - PLOT_TOP), 1)

        chart.y_ticks = [(y(t), number_label(float(t))) for t in ticks]
        runs, previous = [], None
        for t, (c, lo, hi, avg) in buckets:
            if previous is None or t - previous > gap:
                runs.append([])
            runs[-1].append((t, c, lo, hi, avg))
            previous = t
        segments = []
        for run in runs:
            line = [(_x(t, window), y(avg)) for t, _, _, _, avg in run]
            segments.append("M" + " L".join(f"{x},{yy}" for x, yy in line))
            if len(run) > 1:
                upper = [f"{_x(t, window)},{y(hi)}" for t, _, _, hi, _ in run]
                lower = [f"{_x(t, window)},{y(lo)}" for t, _, lo, _, _ in reversed(run)]
                chart.band.append(" ".join(upper + lower))
            for t, c, lo, hi, avg in run:
                when = datetime.fromtimestamp(t, tz=UTC).astimezone(tz).strftime("%d %b %H:%M")
                spread = "" if c == 1 or lo == hi else f" (min {text(field, lo)}, max {text(field, hi)})"
                chart.points.append(ChartPoint(_x(t, window), y(avg), f"{when} · {text(field, avg)}{spread}"))
        chart.path = " ".join(segments)
        chart.minimum, chart.maximum, chart.average = text(field, low), text(field, high), text(field, average)
        chart.summary = (
            f"{label}, the last {window.words}: minimum {chart.minimum}, maximum {chart.maximum}, "
            f"average {chart.average}, from {count} reading{'s' if count != 1 else ''}."
        )
        charts.append(chart)
    return charts
