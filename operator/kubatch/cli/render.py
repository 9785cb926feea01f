"""Rendering: fixed-width tables that fit the terminal, ages, timestamps, JSON/YAML dumps."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

ELLIPSIS = "…"
DEFAULT_WIDTH = 80
GAP = 2


def terminal_width() -> int:
    """The terminal's width when stdout is a TTY, else 80."""
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns, 40)
    return DEFAULT_WIDTH


def truncate(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def _cell(value: object) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split())  # one line per row, whatever the text holds


def fit_widths(natural: Sequence[int], headers: Sequence[str], flex: Sequence[int], max_width: int) -> list[int]:
    """Column widths within ``max_width``: shrink the ``flex`` columns (last first), never below
    their header nor 4 characters; the others keep their natural width."""
    widths = list(natural)
    over = sum(widths) + GAP * (len(widths) - 1) - max_width
    for i in reversed(flex):
        if over <= 0:
            break
        floor = max(len(headers[i]), 4)
        cut = min(over, widths[i] - floor)
        if cut > 0:
            widths[i] -= cut
            over -= cut
    return widths


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    max_width: int | None = None,
    flex: Sequence[str] = (),
) -> str:
    """A left-aligned table; with ``max_width``, the ``flex`` columns are truncated to fit."""
    cells = [[_cell(v) for v in row] for row in rows]
    natural = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    widths = natural
    if max_width is not None:
        flex_idx = [headers.index(name) for name in flex if name in headers]
        widths = fit_widths(natural, headers, flex_idx, max_width)
    lines = []
    for row in [list(headers), *cells]:
        parts = [truncate(v, w).ljust(w) for v, w in zip(row, widths, strict=True)]
        lines.append((" " * GAP).join(parts).rstrip())
    return "\n".join(lines)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp (as the API writes them), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """kubectl-style short duration: 45s, 12m, 3h, 2d."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    if s < 3600 * 2:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def age(timestamp: object, now: datetime | None = None) -> str:
    """Age of an RFC 3339 timestamp, or ``<unknown>``."""
    t = parse_time(timestamp)
    if t is None:
        return "<unknown>"
    return human_duration(((now or datetime.now(UTC)) - t).total_seconds())


def starts_in(timestamp: object, now: datetime | None = None) -> str:
    """``in 2m5s`` until an RFC 3339 timestamp (``now`` once it has passed), or ``""`` when unset."""
    t = parse_time(timestamp)
    if t is None:
        return ""
    left = (t - (now or datetime.now(UTC))).total_seconds()
    return "now" if left < 1 else f"in {human_duration(left)}"


def local_time(timestamp: object) -> str:
    """A timestamp as written (UTC), or ``-``."""
    t = parse_time(timestamp)
    return t.strftime("%Y-%m-%d %H:%M:%SZ") if t else "-"


def dump(data: Any, output: str) -> str:
    """JSON or YAML text of ``data``."""
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False, default=str)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")


def key_values(pairs: Sequence[tuple[str, object]], indent: int = 0) -> str:
    """``Key:  value`` lines, aligned; pairs with a None value are skipped."""
    shown = [(k, _cell(v)) for k, v in pairs if v is not None and v != ""]
    if not shown:
        return ""
    width = max(len(k) for k, _ in shown) + 1
    pad = " " * indent
    return "\n".join(f"{pad}{(k + ':').ljust(width)}  {v}" for k, v in shown)


def counts(summary: Mapping[str, Any] | None, order: Sequence[str]) -> str:
    """``RUNNING=2 SUCCEEDED=7`` for the non-zero states, in ``order``."""
    if not summary:
        return ""
    return " ".join(f"{s}={summary[s]}" for s in order if summary.get(s))
