"""RFC 3339 timestamps: the API server's second precision, and milliseconds where they matter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.timestamps import iso, iso_millis, parse_iso

EPOCHS = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)  # up to 2100


def test_the_api_servers_timestamps_and_their_fractions() -> None:
    assert parse_iso("2027-01-15T08:00:00Z") == 1_800_000_000.0
    assert parse_iso("2027-01-15T08:00:00.250Z") == 1_800_000_000.25
    assert parse_iso("2027-01-15T08:00:00.123456Z") == 1_800_000_000.123456  # a MicroTime
    assert parse_iso("2027-01-15T08:00:00+00:00") == 1_800_000_000.0
    assert parse_iso("") is None and parse_iso(None) is None and parse_iso("yesterday") is None


def test_milliseconds_round_and_carry_into_the_second() -> None:
    assert iso_millis(1_800_000_000.0) == "2027-01-15T08:00:00.000Z"
    assert iso_millis(1_800_000_000.2504) == "2027-01-15T08:00:00.250Z"
    assert iso_millis(1_800_000_059.9996) == "2027-01-15T08:01:00.000Z"


@given(EPOCHS)
def test_milliseconds_read_back_within_half_a_millisecond(ts: float) -> None:
    back = parse_iso(iso_millis(ts))
    assert back is not None and abs(back - ts) <= 0.0005 + 1e-6


@given(EPOCHS)
def test_seconds_truncate(ts: float) -> None:
    back = parse_iso(iso(ts))
    assert back is not None and 0 <= ts - back < 1
