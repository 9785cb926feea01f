"""The view keeps job counts per queue and state, unfinished jobs per (queue, share) and the set of
finished jobs as jobs change: after any sequence of informer events, status overlays and deletions
they equal a count over every job (what the queues' status and the retention sweep used to
recount every round)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubatch.cluster.view import View

STATES = ["RUNNABLE", "PENDING", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", None]


def recount(view: View) -> tuple[dict[str, Counter[str]], dict[tuple[str, str], int]]:
    counts: dict[str, Counter[str]] = {}
    shares: Counter[tuple[str, str]] = Counter()
    for job in view.jobs.values():
        spec, status = job.get("spec") or {}, job.get("status") or {}
        c = counts.setdefault(str(spec.get("jobQueue", "")), Counter())
        summary = (status.get("arrayProperties") or {}).get("statusSummary")
        if summary:
            for state, n in summary.items():
                c[state] += int(n)
        else:
            c[str(status.get("status") or "SUBMITTED")] += 1
        if spec.get("shareIdentifier") and status.get("status") not in ("SUCCEEDED", "FAILED"):
            shares[(str(spec.get("jobQueue", "")), str(spec["shareIdentifier"]))] += 1
    return counts, dict(shares)


op = st.one_of(
    st.tuples(
        st.just("job"),
        st.integers(0, 5),
        st.integers(0, 2),
        st.sampled_from(STATES),
        st.sampled_from(["q1", "q2"]),
        st.sampled_from([None, "a", "b"]),
        st.booleans(),
    ),
    st.tuples(st.just("overlay"), st.integers(0, 5), st.sampled_from(STATES)),
    st.tuples(st.just("delete"), st.integers(0, 5)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_kept_counts_equal_a_recount(steps: list[Any]) -> None:
    view = View()
    for rv, step in enumerate(steps, start=1):
        kind, i = step[0], step[1]
        key = f"ns/j{i}"
        if kind == "job":
            _, _, uid, state, queue, share, array = step
            status: dict[str, Any] = {} if state is None else {"status": state}
            if array:
                status["arrayProperties"] = {"statusSummary": {"RUNNABLE": i, "SUCCEEDED": 2}}
            spec: dict[str, Any] = {"jobQueue": queue}
            if share:
                spec["shareIdentifier"] = share
            md = {"namespace": "ns", "name": f"j{i}", "uid": f"u{uid}", "resourceVersion": str(rv)}
            view.on_job("MODIFIED", {"metadata": md, "spec": spec, "status": status})
        elif kind == "overlay":
            job = view.jobs.get(key)
            if job is not None:
                view.set_status(key, {**(job.get("status") or {}), "status": step[2]})
        elif key in view.jobs:
            view.on_job("DELETED", view.jobs[key])
        counts, shares = recount(view)
        kept = {q: Counter({s: n for s, n in c.items() if n}) for q, c in view.job_counts.items()}
        assert {q: c for q, c in kept.items() if c} == {q: c for q, c in counts.items() if c}
        assert view.share_jobs == shares
        done = {k for k, j in view.jobs.items() if (j.get("status") or {}).get("status") in ("SUCCEEDED", "FAILED")}
        assert view.finished == done and view.active == set(view.jobs) - done
