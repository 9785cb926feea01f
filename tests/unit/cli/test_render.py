"""Tables that fit 80 columns, ages, durations."""

from __future__ import annotations

from datetime import UTC, datetime

from kubatch.cli.render import age, counts, dump, fit_widths, human_duration, key_values, table, truncate

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_truncate() -> None:
    assert truncate("abcdef", 6) == "abcdef"
    assert truncate("abcdef", 4) == "abc…"


def test_table_aligns_columns() -> None:
    out = table(["A", "LONGER"], [["x", 1], ["yyyy", None]])
    assert out.splitlines() == ["A     LONGER", "x     1", "yyyy"]


def test_table_shrinks_flexible_columns_last_first_to_fit() -> None:
    rows = [["job-" + "n" * 40, "RUNNABLE", "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - waiting for nodes " * 2]]
    out = table(["NAME", "STATUS", "REASON"], rows, max_width=80, flex=("NAME", "REASON"))
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "job-" + "n" * 40 in lines[1]  # REASON is cut before NAME
    assert lines[1].endswith("…")


def test_table_keeps_headers_readable_when_very_narrow() -> None:
    assert fit_widths([30, 30], ["NAME", "REASON"], [0, 1], 20) == [12, 6]
    assert fit_widths([30, 30], ["NAME", "REASON"], [0, 1], 5) == [4, 6]


def test_table_flattens_multiline_cells() -> None:
    assert table(["R"], [["line1\nline2"]]).splitlines()[1] == "line1 line2"


def test_human_duration_and_age() -> None:
    assert [human_duration(s) for s in (5, 119, 125, 7199, 7200, 172799, 172800)] == [
        "5s", "119s", "2m", "119m", "2h", "47h", "2d",
    ]
    assert age("2026-01-01T11:00:00Z", NOW) == "60m"
    assert age(None, NOW) == "<unknown>"
    assert age("garbage", NOW) == "<unknown>"


def test_key_values_skip_empty_values_and_align() -> None:
    assert key_values([("Name", "x"), ("Reason", ""), ("Long key", 3), ("None", None)]) == (
        "Name:      x\nLong key:  3"
    )


def test_counts_and_dump() -> None:
    assert counts({"RUNNING": 2, "FAILED": 0, "SUCCEEDED": 1}, ["SUCCEEDED", "RUNNING", "FAILED"]) == (
        "SUCCEEDED=1 RUNNING=2"
    )
    assert dump({"a": 1}, "json") == '{\n  "a": 1\n}'
    assert dump({"a": [1]}, "yaml") == "a:\n- 1"
