"""`kubatch schedules`: the table and the next run time, without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubatch.cli.schedules import next_run, schedules_table

NOW = datetime(2025, 6, 2, 12, 10, 30, tzinfo=UTC)


def schedule(name: str, cron: str, **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"schedule": cron, "jobTemplate": {"spec": {"jobQueue": "q", "jobDefinition": "d"}}, **spec},
        "status": status,
    }


def test_next_run() -> None:
    assert next_run(schedule("a", "0 * * * *"), NOW) == (
        datetime(2025, 6, 2, 13, 0, tzinfo=UTC),
        "in 49m",
    )
    assert next_run(schedule("a", "0 3 * * *", timeZone="Asia/Tokyo"), NOW)[0] == datetime(
        2025, 6, 2, 18, 0, tzinfo=UTC
    )
    assert next_run(schedule("a", "@daily", suspend=True), NOW) == (None, "suspended")
    assert next_run(schedule("a", "61 * * * *"), NOW) == (None, "invalid")


def test_table() -> None:
    rows = [
        schedule(
            "nightly",
            "30 2 * * *",
            timeZone="Europe/Paris",
            status={"lastScheduleTime": "2025-06-02T00:30:00Z", "active": ["nightly-1"]},
        ),
        schedule("paused", "@hourly", suspend=True, concurrencyPolicy="Forbid"),
    ]
    out = schedules_table(rows, now=NOW).splitlines()
    assert out[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "NEXT", "RUN"]
    assert out[1].split()[:9] == ["nightly", "30", "2", "*", "*", "*", "Europe/Paris", "false", "1"]
    assert out[1].split()[-4:] == ["11h", "ago", "in", "12h"]
    assert out[2].split() == ["paused", "@hourly", "UTC", "true", "0", "never", "suspended"]
    wide = schedules_table(rows, wide=True, namespaced=False, now=NOW).splitlines()
    assert wide[0].startswith("NAMESPACE") and "CONCURRENCY" in wide[0]
    assert wide[1].split()[-4:] == ["2025-06-03T00:30:00Z", "q", "d", "Allow"]
    assert "Forbid" in wide[2] and wide[2].startswith("ns")
