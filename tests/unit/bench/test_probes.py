"""The benchmark's readers of the API server's /metrics: requests counted by verb and resource.

Proves: `apiserver_request_total` lines are summed over their other labels, subresources and
non-2xx codes are kept apart, and a delta keeps only what moved, biggest first."""

from __future__ import annotations

from bench.probes import counts_delta, request_counts

METRICS = """\
# HELP apiserver_request_total Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",group="",resource="pods",subresource="",verb="POST"} 10
apiserver_request_total{code="201",group="",resource="pods",subresource="binding",verb="POST"} 7
apiserver_request_total{code="200",group="kubatch.dev",resource="batchjobs",subresource="status",verb="PATCH"} 4
apiserver_request_total{code="200",group="kubatch.dev",resource="batchjobs",subresource="status",verb="APPLY"} 1
apiserver_request_total{code="404",group="",resource="pods",subresource="",verb="DELETE"} 3
apiserver_request_total{code="200",group="",resource="pods",subresource="",verb="DELETE"} 2
apiserver_request_total{code="200",group="",resource="pods",scope="namespace",subresource="",verb="DELETE"} 1
apiserver_current_inflight_requests{request_kind="mutating"} 3
"""


def test_requests_are_counted_by_verb_and_resource() -> None:
    counts = request_counts(METRICS)
    assert counts == {
        "POST pods": 10,
        "POST pods/binding": 7,
        "PATCH batchjobs/status": 4,
        "APPLY batchjobs/status": 1,
        "DELETE pods (404)": 3,
        "DELETE pods": 3,
    }


def test_delta_keeps_what_moved_biggest_first() -> None:
    before = {"POST pods": 10.0, "DELETE pods": 3.0}
    after = {"POST pods": 30.0, "DELETE pods": 3.0, "POST events": 5.0}
    assert list(counts_delta(after, before).items()) == [("POST pods", 20), ("POST events", 5)]
