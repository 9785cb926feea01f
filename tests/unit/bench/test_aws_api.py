"""The aws_api benchmark's pure helpers: phase order, id groups, a method's figures over its rounds,
which counted requests a submission made, and the API server's own times from its log.

Proves: the methods alternate which goes first; ids split into DescribeJobs-sized groups; a method's
rate is over all its time (not a mean of rates), its CPU and requests are per successful job;
status writes and events are not counted as a submission's; log lines of other operations, failed
calls and other loggers are left out."""

from __future__ import annotations

import pytest
from bench.scenarios.aws_api import (
    Phase,
    chunks,
    combine,
    label_selector,
    order,
    rate,
    server_times,
    submission_requests,
)


def test_rounds_alternate_which_method_goes_first() -> None:
    assert order(3) == ["direct", "api", "api", "direct", "direct", "api"]
    assert order(0) == []


def test_ids_in_groups_and_the_selector_describe_jobs_makes() -> None:
    ids = [f"id{i}" for i in range(250)]
    groups = chunks(ids, 100)
    assert [len(g) for g in groups] == [100, 100, 50] and [i for g in groups for i in g] == ids
    with pytest.raises(ValueError):
        chunks(ids, 0)
    assert label_selector(["a", "b"]) == "kubatch.dev/job-id in (a,b)"
    assert label_selector(["a"]) == "kubatch.dev/job-id=a"


def test_a_methods_figures_over_its_rounds() -> None:
    phases = [
        Phase("api", 100, 2.0, [0.1] * 100, cpu_s={"api-server": 0.1, "kube-apiserver": 0.5, "etcd": 0.0},
              requests={"POST batchjobs": 100, "GET jobqueues": 1}),
        Phase("direct", 100, 1.0, [0.05] * 100, cpu_s={"kube-apiserver": 0.4}, requests={"POST batchjobs": 100}),
        Phase("api", 100, 3.0, [0.2] * 99, errors=["ClientError: throttled"], cpu_s={"api-server": 0.099},
              requests={"POST batchjobs": 99}),
    ]  # fmt: skip
    api = combine(phases, "api")
    assert api["submitted"] == 199 and api["seconds"] == 5.0
    assert api["per_s"] == pytest.approx(199 / 5.0)  # over all its time
    assert api["per_s_by_round"] == [pytest.approx(50.0), pytest.approx(33.0)]
    assert (api["p50_s"], api["p99_s"], api["error_count"]) == (0.1, 0.2, 1)
    assert api["cpu_ms_per_job"] == {"api-server": pytest.approx(1.0), "kube-apiserver": pytest.approx(2.51)}
    assert api["requests_per_job"] == {"POST batchjobs": 1.0, "GET jobqueues": 0.01}
    assert api["requests_per_job_total"] == pytest.approx(1.01)
    assert combine(phases, "direct")["per_s"] == 100.0
    empty = combine([], "api")
    assert empty["per_s"] is None and empty["requests_per_job_total"] is None
    assert rate(10, 0.0) is None


def test_a_submissions_requests_leave_out_status_writes_and_events() -> None:
    counted = {
        "POST batchjobs": 100,
        "PATCH batchjobs/status": 80,
        "PATCH batchjobs/status (409)": 2,
        "POST events": 5,
        "POST events (403)": 1,
        "GET jobqueues": 1,
    }
    assert submission_requests(counted) == {"POST batchjobs": 100, "GET jobqueues": 1}


def test_the_api_servers_own_times_from_its_log() -> None:
    log = "\n".join(
        [
            "2026-12-04 10:00:00,001 DEBUG   kubatch.awsapi.server: SubmitJob key=KBATABC status=200 12.5ms",
            "2026-12-04 10:00:00,002 DEBUG   kubatch.awsapi.server: SubmitJob key=KBATABC status=400 3.0ms",
            "2026-12-04 10:00:00,003 DEBUG   kubatch.awsapi.server: DescribeJobs key=KBATABC status=200 40.0ms",
            "2026-12-04 10:00:00,004 INFO    kubatch.awsapi.server: answered 400 ClientException: no",
            "2026-12-04 10:00:00,005 DEBUG   other.module: SubmitJob key=KBATABC status=200 99.0ms",
            "2026-12-04 10:00:00,006 DEBUG   kubatch.awsapi.server: SubmitJob key=- status=200 7ms",
        ]
    )
    assert server_times(log, "SubmitJob") == [0.0125, 0.007]
    assert server_times(log, "DescribeJobs") == [0.04]
