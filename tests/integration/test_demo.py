"""`make demo` end to end: the demo's mix of jobs (array with N_TO_N dependencies, retries, a GPU
job, a multi-node job, two teams sharing a fair-share queue) all succeed on the local cluster."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from kubatch.cli.main import cli

pytestmark = pytest.mark.integration


def test_demo_runs_every_job_to_success(operator: Any) -> None:
    result = CliRunner().invoke(cli, ["dev", "demo", "--timeout", "240"])
    assert result.exit_code == 0, result.output[-3000:]
    out = result.output
    assert "== summary" in out
    for job in ("frames", "encoded", "package", "poster", "train-resnet", "cfd-solver", "red-sweep", "blue-sweep"):
        assert job in out
    assert "FAILED" not in out.split("== summary", 1)[1]
    assert "team-blue" in out and "team-red" in out
