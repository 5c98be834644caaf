import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.models import Reading
from devices.reading_charts import HEIGHT, PAD_X, PAD_Y, WIDTH, number_label, series_from_readings

START = datetime(2026, 1, 1, tzinfo=UTC)


def readings(*values):
    return [Reading(recorded_at=START + timedelta(minutes=i), values=v) for i, v in enumerate(values)]


def test_one_series_per_numeric_key_text_and_booleans_left_out():
    series = series_from_readings(readings({"t": 1, "door": "open", "on": True}, {"t": 3, "door": "shut", "on": False}))
    assert [s.key for s in series] == ["t"]


def test_points_span_the_box_from_oldest_to_newest():
    (series,) = series_from_readings(readings({"t": 10}, {"t": 20}, {"t": 15}))
    points = [tuple(map(float, p.split(","))) for p in series.points.split()]
    assert points[0] == (PAD_X, HEIGHT - PAD_Y)  # the lowest value sits on the bottom line
    assert points[1] == (WIDTH / 2, PAD_Y)  # the highest on the top line
    assert points[-1][0] == WIDTH - PAD_X
    assert (series.minimum, series.maximum, series.latest) == (10, 20, 15)


def test_a_flat_series_does_not_divide_by_zero():
    (series,) = series_from_readings(readings({"t": 5}, {"t": 5}))
    assert series.minimum == series.maximum == 5


def test_fewer_than_two_readings_draw_nothing():
    assert series_from_readings(readings({"t": 1})) == []


def test_gaps_and_junk_values_are_skipped():
    (series,) = series_from_readings(readings({"t": 1}, {"t": "n/a"}, {}, {"t": float("nan")}, {"t": 2}))
    assert series.count == 2


def test_number_labels_drop_useless_decimals():
    assert [number_label(v) for v in (69.2, 18.0, 0.05, 7, 3.14159)] == ["69.2", "18", "0.05", "7", "3.14"]


# Any JSON number a check-in accepts: integers far beyond a float, floats at the limits, and junk.
json_numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 10**309, -(10**309)]),
    st.booleans(),
    st.text(max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_numbers, min_size=2, max_size=12))
def test_any_value_a_device_sends_draws_inside_the_box(values):
    for series in series_from_readings(readings(*({"t": v} for v in values))):
        for point in series.points.split():
            x, y = map(float, point.split(","))
            assert math.isfinite(x) and math.isfinite(y)
            assert PAD_X <= x <= WIDTH - PAD_X and PAD_Y <= y <= HEIGHT - PAD_Y
        assert all(len(label) < 20 for label in series.labels.values())


def test_a_huge_integer_after_a_float_is_left_off_the_chart():
    (series,) = series_from_readings(readings({"t": 1.5}, {"t": 10**400}, {"t": 2.5}, {"t": 3.5}))
    assert series.count == 3 and series.maximum == 3.5


def test_labels_of_extreme_magnitudes_stay_short():
    assert number_label(1.5e300) == "1.5e+300"
    assert number_label(-2e-9) == "-2e-09"
