"""Server-rendered charts: a device's recent numeric values as SVG polylines, no JavaScript needed."""

import math
from dataclasses import dataclass

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


def _number(value) -> float | None:
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
            if key not in keys and _number(value) is not None:
                keys.append(key)
    keys = sorted(keys)[:MAX_SERIES]
    start = readings[0].recorded_at.timestamp()
    span = max(readings[-1].recorded_at.timestamp() - start, 1.0)
    result = []
    for key in keys:
        samples = [
            (reading.recorded_at.timestamp(), number)
            for reading in readings
            if (number := _number((reading.values or {}).get(key))) is not None
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
