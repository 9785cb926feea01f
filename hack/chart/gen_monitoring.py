"""Copy the monitoring files of deploy/monitoring/ into the chart (Helm reads only its own files).

    python hack/chart/gen_monitoring.py            # copy
    python hack/chart/gen_monitoring.py --check    # exit 1 if the chart's copies differ

deploy/monitoring/ is the source: kubatch-rules.yaml (a Prometheus rules file) and
kubatch-dashboard.json (a Grafana dashboard). The chart serves them through `.Files.Get` as the
PrometheusRule's spec and the dashboard ConfigMap.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "deploy" / "monitoring"
TARGET = REPO / "charts" / "kubatch" / "files"
FILES = ("kubatch-rules.yaml", "kubatch-dashboard.json")


def drift() -> list[str]:
    return [
        f"{(TARGET / name).relative_to(REPO)}: differs from {(SOURCE / name).relative_to(REPO)}"
        for name in FILES
        if not (TARGET / name).exists() or (TARGET / name).read_bytes() != (SOURCE / name).read_bytes()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the chart's copies differ")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (TARGET / name).write_bytes((SOURCE / name).read_bytes())
        print((TARGET / name).relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
