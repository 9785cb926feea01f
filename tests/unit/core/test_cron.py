"""The cron parser and run times: examples, and properties against brute-force references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kubatch.core.cron import MACROS, Cron, CronError, parse, parse_time_zone

MINUTE = timedelta(minutes=1)
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ---- parsing ----------------------------------------------------------------------------------------
def test_fields_and_names() -> None:
    c = parse("*/15 9-17 * jan,Jul MON-FRI")
    assert c.minutes == {0, 15, 30, 45}
    assert c.hours == set(range(9, 18))
    assert c.months == {1, 7}
    assert c.weekdays == {1, 2, 3, 4, 5}
    assert c.days_star and not c.weekdays_star


def test_steps_ranges_and_sunday_seven() -> None:
    assert parse("5/20 * * * *").minutes == {5, 25, 45}  # N/STEP = N-max/STEP
    assert parse("10-30/10 * * * *").minutes == {10, 20, 30}
    assert parse("0 0 * * 7").weekdays == {0}
    assert parse("0 0 * * 5-7").weekdays == {5, 6, 0}
    assert parse("0 0 * * 1-7/2").weekdays == {1, 3, 5, 0}
    assert parse("0 0 ? * ?").days_star
    assert not parse("0 0 */2 * *").days_star  # a step restricts the field


@pytest.mark.parametrize(("macro", "fields"), sorted(MACROS.items()))
def test_macros(macro: str, fields: str) -> None:
    assert parse(macro).matches_wall(datetime(2024, 1, 1)) == parse(fields).matches_wall(datetime(2024, 1, 1))
    m, f = parse(macro), parse(fields)
    assert (m.minutes, m.hours, m.days, m.months, m.weekdays) == (f.minutes, f.hours, f.days, f.months, f.weekdays)
    assert parse(macro.upper()).minutes == f.minutes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the schedule is empty"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("* * * 13 *", "month: 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
        ("5-1 * * * *", "minute: the range '5-1' ends before it starts"),
        ("*/0 * * * *", "minute: the step in '*/0' must be 1 to 60"),
        ("*/x * * * *", "minute: the step in '*/x' must be a positive number"),
        ("? * * * *", "minute: '?' is only allowed in day-of-month and day-of-week"),
        ("1,,2 * * * *", "minute: empty item in '1,,2'"),
        ("* * * FOO *", "month: unknown name 'FOO'"),
        ("MON * * * *", "minute: 'MON' is not a number"),
        ("-1 * * * *", "minute: '-1' is not a number, range or '*'"),
        ("@every 5m", "unknown macro '@every 5m'"),
        ("TZ=Europe/Paris 0 0 * * *", "set spec.timeZone"),
        ("0 0 30 2 *", "the schedule never runs: no month of FEB has day 30"),
        ("0 0 31 4,6 *", "the schedule never runs"),
    ],
)
def test_invalid_schedules_say_why(text: str, message: str) -> None:
    with pytest.raises(CronError, match=None) as e:
        parse(text)
    assert message in str(e.value)


def test_feb_29_and_both_day_fields_are_accepted() -> None:
    assert parse("0 0 29 2 *").next_after(utc(2025, 1, 1)) == utc(2028, 2, 29)
    # Day-of-month and day-of-week both restricted: either matches (Feb 30 never, Mondays do).
    assert parse("0 0 30 2 MON").next_after(utc(2025, 1, 1)) == utc(2025, 2, 3)


def test_time_zones() -> None:
    assert parse_time_zone(None) is UTC and parse_time_zone("") is UTC
    assert parse_time_zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    for bad in ("Mars/Olympus", "../etc/passwd", "/usr/share/zoneinfo/UTC", " UTC", "Europe\\Paris"):
        with pytest.raises(CronError, match="unknown time zone"):
            parse_time_zone(bad)


# ---- run times: examples ------------------------------------------------------------------------------
def test_next_and_last() -> None:
    c = parse("*/15 9-17 * * MON-FRI")
    friday = utc(2025, 3, 7, 16, 50)
    assert c.next_after(friday) == utc(2025, 3, 7, 17, 0)
    assert c.last_at_or_before(friday) == utc(2025, 3, 7, 16, 45)
    assert c.next_after(utc(2025, 3, 7, 17, 45)) == utc(2025, 3, 10, 9, 0)  # over the weekend
    assert c.last_at_or_before(utc(2025, 3, 7, 16, 45)) == utc(2025, 3, 7, 16, 45)  # at = included
    assert c.next_after(utc(2025, 3, 7, 16, 45)) == utc(2025, 3, 7, 17, 0)  # after = excluded
    assert c.next_after(utc(2025, 3, 7, 16, 44, 59, 999999)) == utc(2025, 3, 7, 16, 45)


def test_daylight_saving_gap_skips_and_fold_runs_once() -> None:
    paris = ZoneInfo("Europe/Paris")
    c = parse("30 2 * * *")
    # 2025-03-30 02:30 does not exist in Paris (02:00 -> 03:00): no run that day.
    assert c.next_after(utc(2025, 3, 29, 12), paris) == utc(2025, 3, 31, 0, 30)
    assert c.last_at_or_before(utc(2025, 3, 30, 23), paris) == utc(2025, 3, 29, 1, 30)
    # 2025-10-26 02:30 happens twice (03:00 -> 02:00): the first one (CEST, 00:30 UTC) only.
    assert c.next_after(utc(2025, 10, 25, 12), paris) == utc(2025, 10, 26, 0, 30)
    assert c.next_after(utc(2025, 10, 26, 0, 30), paris) == utc(2025, 10, 27, 1, 30)
    ny = ZoneInfo("America/New_York")
    # In the second pass of 01:xx (EST), the run at 01:30 EDT is already past.
    second_pass = utc(2025, 11, 2, 6, 20)  # 01:20 EST
    assert parse("30 1 * * *").last_at_or_before(second_pass, ny) == utc(2025, 11, 2, 5, 30)
    assert parse("30 1 * * *").next_after(second_pass, ny) == utc(2025, 11, 3, 6, 30)


def test_hourly_with_a_zone_that_is_not_whole_hours() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    assert parse("@hourly").next_after(utc(2025, 1, 1, 0, 10), kolkata) == utc(2025, 1, 1, 0, 30)


# ---- run times: properties ------------------------------------------------------------------------------
def _subset(low: int, high: int) -> st.SearchStrategy[frozenset[int]]:
    return st.frozensets(st.integers(low, high), min_size=1, max_size=high - low + 1)


@st.composite
def crons(draw: st.DrawFn) -> Cron:
    """A schedule as sets of values, written out as comma lists (dense enough to brute force)."""
    minutes = draw(_subset(0, 59))
    hours = draw(_subset(0, 23))
    days = draw(st.one_of(st.none(), st.frozensets(st.integers(1, 28), min_size=5, max_size=28)))
    weekdays = draw(st.one_of(st.none(), st.frozensets(st.integers(0, 6), min_size=1, max_size=7)))

    def field(values: frozenset[int] | None) -> str:
        return "*" if values is None else ",".join(str(v) for v in sorted(values))

    text = f"{field(minutes)} {field(hours)} {field(days)} * {field(weekdays)}"
    cron = parse(text)
    assert cron.minutes == minutes and cron.hours == hours
    return cron


def reference_matches(c: Cron, t: datetime) -> bool:
    """Cron's rule written out independently (UTC wall clock)."""
    dom_ok = t.day in c.days
    dow_ok = (t.weekday() + 1) % 7 in c.weekdays
    day_ok = (dom_ok and dow_ok) if (c.days_star or c.weekdays_star) else (dom_ok or dow_ok)
    return t.minute in c.minutes and t.hour in c.hours and t.month in c.months and day_ok


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))


@given(crons(), instants)
def test_next_after_is_the_first_match_after(c: Cron, t: datetime) -> None:
    nxt = c.next_after(t)
    assert nxt is not None and nxt > t and reference_matches(c, nxt) and c.matches(nxt)
    assume(nxt - t <= timedelta(days=4))
    probe = t.replace(second=0, microsecond=0) + MINUTE
    while probe < nxt:
        assert not reference_matches(c, probe), probe
        probe += MINUTE


@given(crons(), instants)
def test_last_at_or_before_is_the_latest_match(c: Cron, t: datetime) -> None:
    last = c.last_at_or_before(t)
    assert last is not None and last <= t and reference_matches(c, last)
    nxt = c.next_after(last)
    assert nxt is not None and nxt > t  # nothing in between
    assert c.last_at_or_before(nxt) == nxt
    assert c.last_at_or_before(nxt - timedelta(microseconds=1)) == last


@given(crons(), instants, st.sampled_from(ZONES))
def test_run_times_in_time_zones(c: Cron, t: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    nxt = c.next_after(t, tz)
    last = c.last_at_or_before(t, tz)
    assert nxt is not None and last is not None
    assert last <= t < nxt
    assert c.matches(nxt, tz) and c.matches(last, tz)
    # Nothing matches between them: checked minute by minute when the gap is short.
    assume(nxt - last <= timedelta(days=3))
    probe = last + MINUTE
    while probe < nxt:
        assert not c.matches(probe, tz), probe
        probe += MINUTE


@given(instants, st.sampled_from(ZONES))
def test_every_minute(t: datetime, zone: str) -> None:
    c = parse("* * * * *")
    tz = ZoneInfo(zone)
    floor = t.replace(second=0, microsecond=0)
    nxt = c.next_after(t, tz)
    last = c.last_at_or_before(t, tz)
    assert last is not None and nxt is not None
    # Whole-minute offsets: every instant minute is a run, except second passes of repeated hours.
    if t.astimezone(tz).fold == 0 and (t + MINUTE).astimezone(tz).fold == 0:
        assert last == floor and nxt == floor + MINUTE


# ---- parser properties ------------------------------------------------------------------------------------
@st.composite
def field_items(draw: st.DrawFn, low: int, high: int) -> tuple[str, set[int]]:
    """One comma-list item and the values it stands for."""
    kind = draw(st.sampled_from(["value", "range", "star-step", "range-step", "start-step"]))
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    step = draw(st.integers(1, high - low + 1))
    if kind == "value":
        return str(a), {a}
    if kind == "range":
        return f"{a}-{b}", set(range(a, b + 1))
    if kind == "star-step":
        return f"*/{step}", set(range(low, high + 1, step))
    if kind == "range-step":
        return f"{a}-{b}/{step}", set(range(a, b + 1, step))
    return f"{a}/{step}", set(range(a, high + 1, step))


@given(st.lists(field_items(0, 59), min_size=1, max_size=4), st.lists(field_items(0, 23), min_size=1, max_size=3))
def test_parse_expands_lists_ranges_and_steps(
    minutes: list[tuple[str, set[int]]], hours: list[tuple[str, set[int]]]
) -> None:
    text = f"{','.join(t for t, _ in minutes)} {','.join(t for t, _ in hours)} * * *"
    c = parse(text)
    assert c.minutes == set().union(*(v for _, v in minutes))
    assert c.hours == set().union(*(v for _, v in hours))


@given(st.integers(60, 10_000))
def test_out_of_range_minutes_are_rejected(value: int) -> None:
    with pytest.raises(CronError, match="minute"):
        parse(f"{value} * * * *")


@given(st.text(max_size=40))
def test_parse_never_crashes(text: str) -> None:
    try:
        c = parse(text)
    except CronError:
        return
    assert c.next_after(utc(2030, 1, 1)) is not None
