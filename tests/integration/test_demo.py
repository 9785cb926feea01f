"""`make demo` end to end: the demo's mix of jobs (array with N_TO_N dependencies, retries, a GPU
job, a multi-node job, two teams sharing a fair-share queue) all succeed on the local cluster."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from kubatch.cli.main import cli

pytestmark = pytest.mark.integration


def test_demo_runs_every_job_to_success(operator: Any, cluster: Any) -> None:
    result = CliRunner().invoke(cli, ["dev", "demo", "--timeout", "240"])
    assert result.exit_code == 0, result.output[-3000:]
    out = result.output
    assert "== summary" in out
    for job in ("frames", "encoded", "package", "poster", "train-resnet", "cfd-solver", "red-sweep", "blue-sweep"):
        assert job in out
    assert "FAILED" not in out.split("== summary", 1)[1]
    assert "team-blue" in out and "team-red" in out
    if cluster.real_nodes:
        # The real-container part: an array of 2 on the real nodes, its output read with kubatch logs.
        real = out.split("== real containers: their output", 1)[1]
        for child in (0, 1):
            assert f"$ kubatch logs real-checksum:{child}" in real
            assert f"child {child} on realnodes via realnodes" in real
        assert real.count("sum of 1..100000 = 5000050000") == 2, real
