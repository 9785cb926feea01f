"""Cron schedules, as Kubernetes CronJob reads them: parsing, validation and run times. Pure.

Owns: ``parse`` (a schedule text -> ``Cron``, or ``CronError`` with a message naming the field and
the offending value), ``parse_time_zone`` (an IANA name -> ``ZoneInfo``), and on ``Cron``:
``matches``, ``next_after`` (the first run strictly after an instant) and ``last_at_or_before``
(the latest run at or before an instant).

The syntax is the standard five fields of CronJob (robfig/cron's standard parser):

    minute (0-59)  hour (0-23)  day-of-month (1-31)  month (1-12 or JAN-DEC)  day-of-week (0-6 or SUN-SAT; 7 = SUN)

Each field is a comma list of ``*``, ``?`` (only in the day fields; the same as ``*``), ``N``,
``N-M``, each optionally followed by ``/STEP``; ``N/STEP`` means ``N-<max>/STEP``. Names are
case-insensitive. The macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``) and ``@hourly`` stand for ``0 0 1 1 *``, ``0 0 1 * *``, ``0 0 * * 0``, ``0 0 * * *``
and ``0 * * * *``. Days follow cron's rule: when both day-of-month and day-of-week are restricted
(neither is ``*``), a day matches if either matches; otherwise both must.

Times are evaluated on the wall clock of a time zone (UTC unless given). A wall-clock time that a
daylight-saving change skips does not exist, so no run happens at it; a wall-clock time that occurs
twice (the clock is set back) runs once, at its first occurrence. A schedule that can never run
(``0 0 30 2 *``) is rejected by ``parse``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: Days in each month at most (February: leap years).
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: How far ``next_after`` and ``last_at_or_before`` look: a schedule on February 29 runs at least
#: every 8 years (2096 -> 2104).
SEARCH_YEARS = 9
MAX_LENGTH = 256

_MINUTE = timedelta(minutes=1)
_TOKEN = re.compile(r"^[0-9A-Za-z]+$")
_NUMBER = re.compile(r"^[0-9]+$")


class CronError(ValueError):
    """A schedule or time zone that cannot be used; the message says which part and why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0
    question_mark: bool = False


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31, question_mark=True),
    _Field("month", 1, 12, MONTH_NAMES, 1),
    _Field("day-of-week", 0, 6, DAY_NAMES, 0, question_mark=True),
)


@dataclass(frozen=True)
class Cron:
    """A parsed schedule: the allowed values of each field."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_star: bool  # day-of-month is unrestricted (`*` or `?`)
    weekdays_star: bool  # day-of-week is unrestricted

    # ---- matching (naive wall-clock datetimes) ----------------------------------------------------
    def day_matches(self, day: datetime) -> bool:
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def matches_wall(self, t: datetime) -> bool:
        """Whether the wall-clock minute ``t`` (naive) is a run time."""
        return t.minute in self.minutes and t.hour in self.hours and t.month in self.months and self.day_matches(t)

    def matches(self, t: datetime, tz: tzinfo = UTC) -> bool:
        """Whether the instant ``t`` (aware) is a run time: a whole minute that matches on ``tz``'s
        wall clock, and the first occurrence of that wall-clock time."""
        if t.second or t.microsecond:
            return False
        wall = t.astimezone(tz).replace(tzinfo=None)
        return self.matches_wall(wall) and _instant(wall, tz) == t

    # ---- run times --------------------------------------------------------------------------------
    def next_after(self, t: datetime, tz: tzinfo = UTC) -> datetime | None:
        """The first run time strictly after the instant ``t`` (aware), in UTC; None if there is
        none within ``SEARCH_YEARS``."""
        # Run times are first occurrences: after a clock set back, the repeated wall-clock times
        # map to instants before ``t`` and are passed over.
        wall = t.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0) + _MINUTE
        limit = wall + timedelta(days=366 * SEARCH_YEARS)
        while wall <= limit:
            found = self._next_wall(wall, limit)
            if found is None:
                return None
            instant = _instant(found, tz)
            if instant is not None and instant > t:
                return instant.astimezone(UTC)
            wall = found + _MINUTE
        return None

    def last_at_or_before(self, t: datetime, tz: tzinfo = UTC) -> datetime | None:
        """The latest run time at or before the instant ``t`` (aware), in UTC; None if there is
        none within ``SEARCH_YEARS``."""
        # In the second pass of a repeated hour, the first occurrences of the wall-clock times
        # after ``t``'s own are already past: start from the end of the repeated period.
        wall = t.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0) + _repeated(t, tz)
        limit = wall - timedelta(days=366 * SEARCH_YEARS)
        while wall >= limit:
            found = self._prev_wall(wall, limit)
            if found is None:
                return None
            instant = _instant(found, tz)
            if instant is not None and instant <= t:
                return instant.astimezone(UTC)
            wall = found - _MINUTE
        return None

    def _next_wall(self, t: datetime, limit: datetime) -> datetime | None:
        """The first matching wall-clock minute at or after ``t`` (naive, whole minute)."""
        while t <= limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
                continue
            if not self.day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            hour = _at_or_after(self.hours, t.hour)
            if hour is None:
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=0)
            minute = _at_or_after(self.minutes, t.minute)
            if minute is None:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            return t.replace(minute=minute)
        return None

    def _prev_wall(self, t: datetime, limit: datetime) -> datetime | None:
        """The last matching wall-clock minute at or before ``t`` (naive, whole minute)."""
        while t >= limit:
            if t.month not in self.months:
                t = t.replace(day=1, hour=0, minute=0) - _MINUTE
                continue
            if not self.day_matches(t):
                t = t.replace(hour=0, minute=0) - _MINUTE
                continue
            hour = _at_or_before(self.hours, t.hour)
            if hour is None:
                t = t.replace(hour=0, minute=0) - _MINUTE
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=59)
            minute = _at_or_before(self.minutes, t.minute)
            if minute is None:
                t = t.replace(minute=0) - _MINUTE
                continue
            return t.replace(minute=minute)
        return None


def _at_or_after(values: frozenset[int], x: int) -> int | None:
    return min((v for v in values if v >= x), default=None)


def _at_or_before(values: frozenset[int], x: int) -> int | None:
    return max((v for v in values if v <= x), default=None)


def _first_of_next_month(t: datetime) -> datetime:
    if t.month == 12:
        return datetime(t.year + 1, 1, 1)
    return datetime(t.year, t.month + 1, 1)


def _instant(wall: datetime, tz: tzinfo) -> datetime | None:
    """The first instant whose wall-clock time on ``tz`` is ``wall`` (naive); None if a
    daylight-saving change skips it."""
    aware = wall.replace(tzinfo=tz, fold=0)
    back = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return aware.astimezone(UTC) if back == wall else None


def _repeated(t: datetime, tz: tzinfo) -> timedelta:
    """How long the clock was set back, if ``t``'s wall-clock time on ``tz`` is a second occurrence;
    zero otherwise."""
    local = t.astimezone(tz)
    if not local.fold:
        return timedelta(0)
    first = local.replace(fold=0).utcoffset()
    second = local.utcoffset()
    return (first - second) if first is not None and second is not None else timedelta(0)


# ---- parsing -----------------------------------------------------------------------------------------
def parse(text: str) -> Cron:
    """Parse a schedule (five fields or a macro); ``CronError`` says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise CronError("the schedule is empty: give five fields (minute hour day-of-month month day-of-week)")
    if len(text) > MAX_LENGTH:
        raise CronError(f"the schedule is longer than {MAX_LENGTH} characters")
    stripped = text.strip()
    if stripped.startswith("@"):
        expanded = MACROS.get(stripped.lower())
        if expanded is None:
            raise CronError(f"unknown macro {stripped!r}: use one of {', '.join(MACROS)}")
        fields = expanded.split()
    else:
        if stripped.upper().startswith(("TZ=", "CRON_TZ=")):
            raise CronError("a time zone in the schedule (TZ=...) is not supported: set spec.timeZone")
        fields = stripped.split()
        if len(fields) != 5:
            raise CronError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)} in {stripped!r}"
            )
    parsed = [_parse_field(value, spec) for value, spec in zip(fields, _FIELDS, strict=True)]
    (minutes, _), (hours, _), (days, days_star), (months, _), (weekdays, weekdays_star) = parsed
    cron = Cron(stripped, minutes, hours, days, months, weekdays, days_star, weekdays_star)
    _check_can_run(cron)
    return cron


def _parse_field(value: str, spec: _Field) -> tuple[frozenset[int], bool]:
    """The values a field allows, and whether it is unrestricted (a bare ``*`` or ``?``)."""
    allowed: set[int] = set()
    star = False
    for part in value.split(","):
        if not part:
            raise CronError(f"{spec.name}: empty item in {value!r}")
        values, bare_star = _parse_part(part, spec)
        allowed.update(values)
        star = star or bare_star
    return frozenset(allowed), star


def _parse_part(part: str, spec: _Field) -> tuple[set[int], bool]:
    range_text, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not _NUMBER.match(step_text):
            raise CronError(f"{spec.name}: the step in {part!r} must be a positive number")
        step = int(step_text)
        if step < 1 or step > spec.high - spec.low + 1:
            raise CronError(f"{spec.name}: the step in {part!r} must be 1 to {spec.high - spec.low + 1}")
    bare_star = False
    if range_text in ("*", "?"):
        if range_text == "?" and not spec.question_mark:
            raise CronError(f"{spec.name}: '?' is only allowed in day-of-month and day-of-week")
        low, high = spec.low, spec.high
        bare_star = step == 1
    else:
        low_text, dash, high_text = range_text.partition("-")
        low = _value(low_text, spec, part)
        if dash:
            high = _value(high_text, spec, part)
        elif slash:
            high = spec.high  # N/STEP: from N to the field's maximum
        else:
            high = low
        if spec.name == "day-of-week" and high == 7 and low <= 7:
            # 7 is Sunday too: N-7 covers N..6 and 0.
            values = set(range(low, 7, step)) if low < 7 else set()
            if (7 - low) % step == 0:
                values.add(0)
            return values, False
        if low > high:
            raise CronError(f"{spec.name}: the range {range_text!r} ends before it starts")
    return set(range(low, high + 1, step)), bare_star


def _value(text: str, spec: _Field, part: str) -> int:
    if not text or not _TOKEN.match(text):
        raise CronError(f"{spec.name}: {part!r} is not a number, range or '*'")
    if _NUMBER.match(text):
        number = int(text)
        high = 7 if spec.name == "day-of-week" else spec.high  # 7 is Sunday too
        if not spec.low <= number <= high:
            raise CronError(f"{spec.name}: {number} is out of range {spec.low}-{high}")
        return number
    upper = text.upper()
    if upper in spec.names:
        return spec.names.index(upper) + spec.names_start
    if spec.names:
        raise CronError(f"{spec.name}: unknown name {text!r} (use {spec.names[0]}-{spec.names[-1]} or numbers)")
    raise CronError(f"{spec.name}: {text!r} is not a number")


def _check_can_run(cron: Cron) -> None:
    """Reject a schedule that no date matches (a day-of-month no allowed month has)."""
    # Only a restricted day-of-month with an unrestricted day-of-week can miss every date: with both
    # restricted any allowed weekday matches, and an unrestricted day-of-month allows every day.
    if not cron.weekdays_star or cron.days_star:
        return
    if not any(d <= MONTH_DAYS[m - 1] for m in cron.months for d in cron.days):
        months = ", ".join(MONTH_NAMES[m - 1] for m in sorted(cron.months))
        days = ", ".join(str(d) for d in sorted(cron.days))
        raise CronError(f"the schedule never runs: no month of {months} has day {days}")


def parse_time_zone(name: str | None) -> tzinfo:
    """``ZoneInfo`` for an IANA time zone name (``None`` or empty: UTC); ``CronError`` otherwise."""
    if not name:
        return UTC
    if name != name.strip() or name.startswith(("/", ".")) or ".." in name or "\\" in name:
        raise CronError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or America/New_York")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise CronError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or America/New_York") from e
