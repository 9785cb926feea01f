"""Quota shares and preemption on the real control plane (issue 14): batch/v1 Jobs queued by kubatch in
the quota shares of a quota-managed service job queue, run by the real Job controller on a kwok node.

Every scenario is watched by polling the namespace's BatchJobs and the Jobs' pods: no share ever holds
more than it may, no job ever has pods of two attempts at once, and every job ends SUCCEEDED (none
lost) unless the scenario fails it on purpose.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.batch import GROUP, TERMINAL, Batch
from tests.integration.test_service_jobs import HOLDING, Service

# Its refusals come from the shared operator's webhook: never while another test restarts it.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("webhook_up")]

CROSS = "PREEMPTION_IN_PROGRESS: Cross-share preemption triggered to reclaim borrowed capacity"
IN_SHARE = "PREEMPTION_IN_PROGRESS: In-share preemption triggered to run a higher priority job"
LIMIT = "PREEMPTION_IN_PROGRESS: Quota share capacity limit lowered below its usage"


def share(name: str, own: int, strategy: str = "RESERVE", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "quotaShareName": name,
        "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": own}],
        "resourceSharingConfiguration": {"strategy": strategy},
    }
    if "borrowLimit" in extra:
        body["resourceSharingConfiguration"]["borrowLimit"] = extra.pop("borrowLimit")
    if extra.pop("in_share", False):
        body["preemptionConfiguration"] = {"inSharePreemption": "ENABLED"}
    return body


class Quota:
    """A quota-managed queue of one test, on an environment of its own, and a watch over its jobs."""

    def __init__(self, batch: Batch, svc: Service, limit: int, shares: list[dict[str, Any]]) -> None:
        self.batch = batch
        self.svc = svc
        policy = batch.cluster_object(
            "SchedulingPolicy", batch.name("qp"), {"quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}}
        )
        self.limit = limit
        self.env = svc.environment(limit)
        self.queue = svc.queue(self.env, schedulingPolicy=policy, quotaShares=shares)
        self.limits = {s["quotaShareName"]: s for s in shares}
        self.share_of: dict[str, str] = {}
        self.max_held: dict[str, int] = defaultdict(int)
        self.attempt_overlap: list[str] = []
        self.seen: dict[str, set[str]] = defaultdict(set)  # job -> states seen

    def job(self, name: str, share_name: str, duration: str = "20s", **spec: Any) -> str:
        self.share_of[name] = share_name
        return self.svc.job(name, self.queue, self.svc.payload(duration=duration), quotaShareName=share_name, **spec)

    def look(self) -> dict[str, dict[str, Any]]:
        """One look at the jobs (status by name); checks the invariants on the way."""
        jobs = self.batch.kget("batchjobs", "-n", self.batch.ns)["items"]
        out = {j["metadata"]["name"]: dict(j.get("status") or {}) for j in jobs}
        for name, st in out.items():
            self.seen[name].add(str(st.get("status")))
        # What holds capacity is the live Jobs (the statuses are written a little later): a Job
        # being deleted (a preemption) holds it until gone, but no longer counts for its share.
        held: dict[str, int] = defaultdict(int)
        kept: dict[str, int] = defaultdict(int)
        workloads = self.batch.kget("jobs.batch", "-n", self.batch.ns, "-l", "kubatch.dev/service-job")["items"]
        for w in workloads:
            owner = w["metadata"]["labels"]["kubatch.dev/service-job"]
            done = any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in (w.get("status") or {}).get("conditions") or []
            )
            if done or owner not in self.share_of:
                continue
            held[self.share_of[owner]] += 1
            if not w["metadata"].get("deletionTimestamp"):
                kept[self.share_of[owner]] += 1
        for s, n in held.items():
            self.max_held[s] = max(self.max_held[s], n)
        assert sum(held.values()) <= self.limit, (held, out)  # never over the environment's limit
        for s, n in kept.items():  # never over a share's own limit plus what it may borrow
            assert n <= self.cap(s), (s, held, out)
        pods = self.batch.kget("pods", "-n", self.batch.ns, "-l", "kubatch.dev/service-job")["items"]
        attempts: dict[str, set[str]] = defaultdict(set)
        for p in pods:
            labels = p["metadata"].get("labels") or {}
            if p.get("status", {}).get("phase") in ("Succeeded", "Failed") and not p["metadata"].get(
                "deletionTimestamp"
            ):
                continue  # a finished attempt's pod, kept by the Job controller: runs nothing
            attempts[labels["kubatch.dev/service-job"]].add(labels.get("kubatch.dev/attempt", "?"))
        for job, seen in attempts.items():
            if len(seen) > 1:
                self.attempt_overlap.append(f"{job}: pods of attempts {sorted(seen)} at once")
        return out

    def cap(self, name: str) -> int:
        body = self.limits[name]
        own = int(body["capacityLimits"][0]["maxCapacity"])
        sharing = body.get("resourceSharingConfiguration") or {}
        if sharing.get("strategy") != "LEND_AND_BORROW":
            return own
        return own + own * int(sharing.get("borrowLimit", 100)) // 100

    def until(self, cond: Callable[[dict[str, dict[str, Any]]], bool], what: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            now = self.look()
            if cond(now):
                return now
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}: {now}"
            time.sleep(0.3)

    def preempted(self, name: str, now: dict[str, dict[str, Any]]) -> int:
        return int((now.get(name, {}).get("preemptionSummary") or {}).get("preemptedAttemptCount") or 0)


@pytest.fixture
def svc(batch: Batch) -> Service:
    return Service(batch)


def holding(now: dict[str, dict[str, Any]], names: list[str]) -> list[str]:
    return [n for n in names if now.get(n, {}).get("status") in HOLDING]


def event_reasons(batch: Batch, job: str) -> list[str]:
    return [e.get("reason", "") for e in batch.events(job)]


def test_a_borrower_is_preempted_when_the_lender_needs_its_capacity(batch: Batch, svc: Service) -> None:
    q = Quota(batch, svc, 4, [share("a", 2, "LEND"), share("b", 2, "LEND_AND_BORROW", borrowLimit=100)])
    bs = [q.job(f"b{i}", "b", duration="25s") for i in range(4)]
    # b borrows a's idle capacity: all four run.
    q.until(lambda now: len(holding(now, bs)) == 4, "b's four jobs holding capacity", 60)

    def utilization() -> dict[str, Any] | None:
        status = batch.kget("jobqueue", q.queue).get("status") or {}
        rows = ((status.get("queueUtilization") or {}).get("quotaShareUtilization") or {}).get("topCapacityUtilization")
        by_name = {r["quotaShareName"]: r for r in rows or []}
        b = by_name.get("b") or {}
        if b.get("capacityUsage") == [{"capacityUnit": "NUM_INSTANCES", "quantity": 4}]:
            return {"rows": rows, "fronts": (status.get("frontOfQuotaShares") or {}).get("quotaShares")}
        return None

    seen = batch.wait_for(utilization, "the queue status to show b's usage", timeout=30)
    assert [r["quotaShareName"] for r in seen["rows"]] == ["b", "a"]  # holding the most first
    assert seen["rows"][0]["borrowedCapacity"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 2}]
    assert seen["rows"][1]["capacityUsage"] == [{"capacityUnit": "NUM_INSTANCES", "quantity": 0}]
    assert seen["fronts"] == {"a": [], "b": []}
    as_ = [q.job(f"a{i}", "a", duration="4s") for i in range(2)]
    # a's jobs take their capacity back: two of b's jobs are preempted, back to RUNNABLE.
    now = q.until(lambda now: len(holding(now, as_)) == 2, "a's jobs holding capacity", 60)
    assert len(holding(now, bs)) <= 2, now
    victims = [b for b in bs if q.preempted(b, now) or now[b].get("statusReason") == CROSS]
    assert len(victims) == 2, now
    now = q.until(lambda now: all(now[n].get("status") in TERMINAL for n in bs + as_), "every job to end", 150)
    for n in bs + as_:
        assert now[n]["status"] == "SUCCEEDED", (n, now[n])  # none lost
    for v in victims:
        summary = now[v]["preemptionSummary"]
        assert summary["preemptedAttemptCount"] == 1, summary
        (record,) = summary["recentPreemptedAttempts"]
        assert record["statusReason"] == CROSS
        assert record["serviceResourceId"]["name"] == "JobUid"
        reasons = event_reasons(batch, v)
        assert "PreemptionStarted" in reasons and "PreemptionCompleted" in reasons, reasons
        # Its second attempt was a new Job; the preempted one is gone.
        jobs = svc.workloads(v)
        assert [j["metadata"]["labels"]["kubatch.dev/attempt"] for j in jobs] == ["2"], jobs
        assert not now[v].get("attempts") or len(now[v]["attempts"]) == 1
    assert q.attempt_overlap == []
    assert q.max_held["b"] == 4 and q.max_held["a"] == 2


def test_in_share_preemption_by_priority(batch: Batch, svc: Service) -> None:
    q = Quota(batch, svc, 4, [share("a", 1, in_share=True)])
    low = q.job("low", "a", duration="25s", schedulingPriority=1)
    q.until(lambda now: now.get(low, {}).get("status") in HOLDING, "low holding", 60)
    same = q.job("same", "a", duration="2s", schedulingPriority=1)
    # An equal priority never preempts: it waits behind the share's limit.
    now = q.until(
        lambda now: str(now.get(same, {}).get("statusReason", "")).startswith("CAPACITY:"), "same blocked", 60
    )
    assert now[low]["status"] in HOLDING and not q.preempted(low, now)
    high = q.job("high", "a", duration="2s", schedulingPriority=9)
    now = q.until(lambda now: now.get(high, {}).get("status") in HOLDING + TERMINAL, "high scheduled", 60)
    now = q.until(lambda now: all(now[n].get("status") in TERMINAL for n in (low, same, high)), "all end", 150)
    assert {n: now[n]["status"] for n in (low, same, high)} == {n: "SUCCEEDED" for n in (low, same, high)}
    assert q.preempted(low, now) == 1
    assert now[low]["preemptionSummary"]["recentPreemptedAttempts"][0]["statusReason"] == IN_SHARE
    assert q.preempted(same, now) == 0 and q.preempted(high, now) == 0
    assert q.max_held["a"] == 1
    assert q.attempt_overlap == []


def test_preemption_retries_before_termination_zero_fails_the_job(batch: Batch, svc: Service) -> None:
    q = Quota(batch, svc, 2, [share("a", 1, in_share=True)])
    low = q.job(
        "low",
        "a",
        duration="30s",
        schedulingPriority=1,
        preemptionConfiguration={"preemptionRetriesBeforeTermination": 0},
    )
    q.until(lambda now: now.get(low, {}).get("status") in HOLDING, "low holding", 60)
    high = q.job("high", "a", duration="2s", schedulingPriority=5)
    now = q.until(lambda now: now.get(low, {}).get("status") in TERMINAL, "low to end", 60)
    assert now[low]["status"] == "FAILED"
    assert now[low]["statusReason"].startswith("Preempted: In-share preemption"), now[low]
    assert "preemptionRetriesBeforeTermination 0" in now[low]["statusReason"]
    assert batch.wait_done(high, timeout=60)["status"] == "SUCCEEDED"
    assert svc.workloads(low) == []  # its Job went with the preemption
    assert q.attempt_overlap == []


def test_reserve_never_lends(batch: Batch, svc: Service) -> None:
    q = Quota(batch, svc, 4, [share("a", 2, "RESERVE"), share("b", 1, "LEND_AND_BORROW", borrowLimit=300)])
    bs = [q.job(f"b{i}", "b", duration="3s") for i in range(3)]
    now = q.until(
        lambda now: any(str(now.get(b, {}).get("statusReason", "")).startswith("CAPACITY:") for b in bs),
        "a b job blocked",
        60,
    )
    blocked = next(b for b in bs if str(now[b].get("statusReason", "")).startswith("CAPACITY:"))
    assert "0 lendable now" in now[blocked].get("statusReasonDetail", ""), now[blocked]
    now = q.until(lambda now: all(now[b].get("status") in TERMINAL for b in bs), "b's jobs to end", 90)
    assert all(now[b]["status"] == "SUCCEEDED" for b in bs)
    assert q.max_held["b"] == 1  # never more than its own: a's idle capacity is reserved


def test_lowering_a_share_limit_preempts(batch: Batch, svc: Service) -> None:
    shares = [share("a", 2, "LEND")]
    q = Quota(batch, svc, 4, shares)
    js = [q.job(f"j{i}", "a", duration="20s", schedulingPriority=i) for i in range(2)]
    q.until(lambda now: len(holding(now, js)) == 2, "both holding", 60)
    lowered = share("a", 1, "LEND")
    spec = {**batch.kget("jobqueue", q.queue)["spec"], "quotaShares": [lowered]}
    batch.apply({"apiVersion": GROUP, "kind": "JobQueue", "metadata": {"name": q.queue}, "spec": spec})
    now = q.until(
        lambda now: str(now["j0"].get("statusReason", "")).startswith("PREEMPTION") or q.preempted("j0", now),
        "the lower-priority job preempted",
        60,
    )
    q.limits["a"] = lowered  # from now on the share holds at most 1 (the preempted job aside)
    now = q.until(lambda now: q.preempted("j0", now) == 1, "the preemption to complete", 60)
    assert q.preempted("j1", now) == 0
    assert now["j0"]["preemptionSummary"]["recentPreemptedAttempts"][0]["statusReason"] == LIMIT
    now = q.until(lambda now: all(now[n].get("status") in TERMINAL for n in js), "both end", 120)
    assert all(now[n]["status"] == "SUCCEEDED" for n in js)
    assert q.attempt_overlap == []


def test_admission_of_quota_managed_queues_and_their_jobs(batch: Batch, svc: Service, admission_namespace: str) -> None:
    """The webhook: a job of a quota-managed queue names one of its shares; quota shares need a
    quota share policy."""
    q = Quota(batch, svc, 2, [share("a", 1)])

    def job(name: str, **spec: Any) -> Any:
        body = {
            "jobQueue": q.queue,
            "serviceJobType": "KUBERNETES_JOB",
            "serviceRequestPayload": svc.payload(),
            **spec,
        }
        meta = {"name": name, "namespace": admission_namespace}
        return batch.create({"apiVersion": GROUP, "kind": "BatchJob", "metadata": meta, "spec": body}, check=False)

    refused = job("no-share")
    assert refused.returncode != 0 and "spec.quotaShareName: required" in refused.stderr, refused.stderr
    refused = job("unknown-share", quotaShareName="b")
    assert refused.returncode != 0 and 'quota share "b" does not exist' in refused.stderr, refused.stderr
    refused = job("with-identifier", quotaShareName="a", shareIdentifier="x")
    assert refused.returncode != 0 and "spec.shareIdentifier" in refused.stderr, refused.stderr
    accepted = job("ok", quotaShareName="a", schedulingPriority=3)
    assert accepted.returncode == 0, accepted.stderr
    from kubatch.devcluster.operatorproc import WEBHOOK_LABEL

    fair = batch.cluster_object("SchedulingPolicy", batch.name("fp"), {"fairsharePolicy": {}})
    bad = batch.name("bad")
    batch.cluster_objects.append(("jobqueue", bad))  # deleted after the test, should it be created
    body = {
        "apiVersion": GROUP,
        "kind": "JobQueue",
        # Cluster-scoped objects are checked by the local webhook when they carry its label.
        "metadata": {"name": bad, "labels": {WEBHOOK_LABEL: "enabled"}},
        "spec": {
            "jobQueueType": "KUBERNETES_JOB",
            "priority": 1,
            "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": q.env}],
            "schedulingPolicy": fair,
            "quotaShares": [share("a", 1)],
        },
    }
    refused = batch.create(body, check=False)
    assert refused.returncode != 0 and "quota shares need a scheduling policy with a quotaSharePolicy" in refused.stderr
