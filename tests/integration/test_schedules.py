"""JobSchedules on the real control plane: a due run submits exactly one BatchJob that runs to
SUCCEEDED on kwok nodes, Forbid and Replace, history limits, suspend, garbage collection, an invalid
schedule or template, and an operator restart that must not submit a run twice.

No test waits for a cron minute to come: each schedule names a time a few minutes in the past
(daily, so its next run is a day away) and its status gets a `lastScheduleTime` before that time,
so that the run is due at once, as after an operator outage (the test suspends the schedule while
it writes the status). A later run is made due the same way, by moving the schedule to a later
past minute, as a user editing a schedule would.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.batch import GROUP, Batch
from tests.integration.helpers import operator_down

pytestmark = pytest.mark.integration

LABEL = "kubatch.dev/schedule"


def minute(offset: int) -> datetime:
    """The start of the minute ``offset`` minutes from now (UTC)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now + timedelta(minutes=offset)


def daily(t: datetime) -> str:
    return f"{t.minute} {t.hour} * * *"


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_name(schedule: str, t: datetime) -> str:
    return f"{schedule}-{int(t.timestamp()) // 60}"


class Schedules:
    """JobSchedule helpers over a test's Batch."""

    def __init__(self, batch: Batch, queue: str, definition: str) -> None:
        self.b = batch
        self.queue = queue
        self.definition = definition

    def create(
        self,
        name: str,
        cron: str,
        *,
        last: datetime | None,
        duration: str = "1s",
        exit_code: int | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """A schedule whose run is due at once: created suspended, its lastScheduleTime set, then resumed
        (unless ``spec`` says suspend)."""
        suspend = bool(spec.pop("suspend", False))
        body = {
            "apiVersion": GROUP,
            "kind": "JobSchedule",
            "metadata": {"name": name, "namespace": self.b.ns},
            "spec": {"schedule": cron, "suspend": True, "jobTemplate": self.template(duration, exit_code), **spec},
        }
        self.b.apply(body)
        if last is not None:
            self.set_last(name, last)
        if not suspend:
            self.patch(name, {"suspend": False})
        return self.get(name)

    def template(self, duration: str, exit_code: int | None = None) -> dict[str, Any]:
        annotations = {"sim.kubatch.dev/duration": duration}
        if exit_code is not None:
            annotations["sim.kubatch.dev/exit-code"] = str(exit_code)
        return {
            "metadata": {"labels": {"team": "media"}},
            "spec": {
                "jobQueue": self.queue,
                "jobDefinition": self.definition,
                "podMetadata": {"annotations": annotations},
            },
        }

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.b.kget("jobschedule", name, "-n", self.b.ns))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.b.kubectl(
            "patch", "jobschedule", name, "-n", self.b.ns, "--type", "merge", "-p", json.dumps({"spec": spec})
        )

    def set_last(self, name: str, t: datetime) -> None:
        body = json.dumps({"status": {"lastScheduleTime": stamp(t)}})
        self.b.kubectl(
            "patch", "jobschedule", name, "-n", self.b.ns, "--subresource=status", "--type", "merge", "-p", body
        )

    def jobs(self, name: str) -> list[dict[str, Any]]:
        items = self.b.kget("batchjobs", "-n", self.b.ns, "-l", f"{LABEL}={name}")["items"]
        return sorted(items, key=lambda j: j["metadata"]["name"])

    def names(self, name: str) -> list[str]:
        return [j["metadata"]["name"] for j in self.jobs(name)]

    def wait_jobs(self, name: str, expected: list[str], what: str, timeout: float = 60) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            jobs = self.jobs(name)
            return jobs if [j["metadata"]["name"] for j in jobs] == sorted(expected) else None

        try:
            return list(self.b.wait_for(check, what, timeout))
        except AssertionError as e:
            raise AssertionError(f"{e}; jobs: {self.names(name)}; schedule status: {self.status(name)}") from None

    def wait_status(self, name: str, what: str, cond: Any, timeout: float = 60) -> dict[str, Any]:
        try:
            return dict(self.b.wait_for(lambda: (lambda s: s if cond(s) else None)(self.status(name)), what, timeout))
        except AssertionError as e:
            raise AssertionError(f"{e}; schedule status: {self.status(name)}") from None

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.b.kget(
            "events", "-n", self.b.ns, "--field-selector", f"involvedObject.name={name},involvedObject.kind=JobSchedule"
        )
        return list(out["items"])

    def wait_event(self, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
        return dict(
            self.b.wait_for(
                lambda: next((e for e in self.events(name) if e["reason"] == reason), None),
                f"a {reason} event on {name}",
                timeout,
            )
        )


@pytest.fixture
def sched(batch: Batch) -> Schedules:
    q = batch.queue([batch.environment(cpu=4)])
    d = batch.container_definition("nightly")
    return Schedules(batch, q, d)


def test_a_due_run_submits_exactly_one_job_that_succeeds(sched: Schedules, batch: Batch) -> None:
    due = minute(-2)
    # Down for a day and an hour: yesterday's run and today's are both missed; only today's starts.
    schedule = sched.create("nightly", daily(due), last=due - timedelta(days=1, hours=1))
    name = run_name("nightly", due)
    (job,) = sched.wait_jobs("nightly", [name], "the due run's job")
    md = job["metadata"]
    assert md["labels"] == {"team": "media", LABEL: "nightly"}
    assert md["annotations"]["kubatch.dev/scheduled-at"] == stamp(due)
    (owner,) = md["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("JobSchedule", "nightly", schedule["metadata"]["uid"])
    assert job["spec"]["jobQueue"] == sched.queue and job["spec"]["jobDefinition"] == sched.definition
    assert batch.wait_done(name)["status"] == "SUCCEEDED"
    status = sched.wait_status(
        "nightly", "lastSuccessfulTime recorded", lambda s: s.get("lastSuccessfulTime") and not s.get("active")
    )
    assert status["lastScheduleTime"] == stamp(due)
    assert status["lastSuccessfulTime"] >= stamp(due)
    assert "statusReason" not in status
    assert sched.names("nightly") == [name]  # one job, and no second one for the missed day before
    assert "SuccessfulCreate" in {e["reason"] for e in sched.events("nightly")}


def test_forbid_holds_the_next_run_until_the_running_job_ends(sched: Schedules, batch: Batch) -> None:
    first, second = minute(-3), minute(-1)
    sched.create("fb", daily(first), last=first - timedelta(hours=1), concurrencyPolicy="Forbid", duration="600s")
    job1 = run_name("fb", first)
    sched.wait_jobs("fb", [job1], "the first run's job")
    batch.wait_status(job1, "RUNNING")
    # The schedule moves to a later (past) minute: that run is due while the first job runs.
    sched.patch("fb", {"schedule": daily(second)})
    sched.wait_event("fb", "JobAlreadyActive")
    status = sched.status("fb")
    assert status["active"] == [job1] and status["lastScheduleTime"] == stamp(first)
    assert sched.names("fb") == [job1]
    # The running job ends: the held run starts (no startingDeadlineSeconds, so it is not too late).
    batch.kubectl(
        "patch", "bj", job1, "-n", batch.ns, "--type", "merge", "-p", '{"spec":{"terminate":{"reason":"done"}}}'
    )
    job2 = run_name("fb", second)
    sched.wait_jobs("fb", [job1, job2], "the held run's job after the first ended")
    assert batch.status(job1)["status"] == "FAILED"
    assert sched.wait_status("fb", "second run recorded", lambda s: s.get("lastScheduleTime") == stamp(second))


def test_replace_terminates_the_running_job(sched: Schedules, batch: Batch) -> None:
    first, second = minute(-3), minute(-1)
    sched.create("rp", daily(first), last=first - timedelta(hours=1), concurrencyPolicy="Replace", duration="600s")
    job1 = run_name("rp", first)
    sched.wait_jobs("rp", [job1], "the first run's job")
    batch.wait_status(job1, "RUNNING")
    sched.patch("rp", {"schedule": daily(second)})
    job2 = run_name("rp", second)
    sched.wait_jobs("rp", [job1, job2], "the replacing run's job")
    ended = batch.wait_done(job1)
    assert ended["status"] == "FAILED"
    assert ended["statusReason"].startswith(f"Replaced by the run of {stamp(second)} of JobSchedule rp")
    batch.wait_status(job2, "RUNNING")
    assert sched.wait_status("rp", "only the new job active", lambda s: s.get("active") == [job2])


def test_history_limits_delete_older_finished_jobs(sched: Schedules, batch: Batch) -> None:
    runs = [minute(-5), minute(-4), minute(-3), minute(-2)]
    names = [run_name("hist", t) for t in runs]
    sched.create(
        "hist",
        daily(runs[0]),
        last=runs[0] - timedelta(hours=1),
        successfulJobsHistoryLimit=1,
        failedJobsHistoryLimit=1,
    )
    assert batch.wait_done(sched.wait_jobs("hist", [names[0]], "run 1")[0]["metadata"]["name"])["status"] == "SUCCEEDED"
    sched.patch("hist", {"schedule": daily(runs[1])})
    batch.wait_for(lambda: names[1] in sched.names("hist"), "run 2")
    assert batch.wait_done(names[1])["status"] == "SUCCEEDED"
    sched.wait_jobs("hist", [names[1]], "run 1 deleted: one SUCCEEDED job is kept")
    # The template changes: the next runs fail (the jobs already submitted are not affected).
    sched.patch("hist", {"jobTemplate": sched.template("1s", exit_code=3), "schedule": daily(runs[2])})
    batch.wait_for(lambda: names[2] in sched.names("hist"), "run 3")
    assert batch.wait_done(names[2])["status"] == "FAILED"
    sched.patch("hist", {"schedule": daily(runs[3])})
    batch.wait_for(lambda: names[3] in sched.names("hist"), "run 4")
    assert batch.wait_done(names[3])["status"] == "FAILED"
    sched.wait_jobs("hist", [names[1], names[3]], "run 3 deleted: one FAILED job is kept")
    status = sched.wait_status("hist", "nothing active", lambda s: not s.get("active"))
    assert status["lastScheduleTime"] == stamp(runs[3])
    assert "SuccessfulDelete" in {e["reason"] for e in sched.events("hist")}


def test_suspend_stops_runs(sched: Schedules, batch: Batch) -> None:
    due = minute(-2)
    schedule = sched.create("paused", daily(due), last=due - timedelta(hours=1), suspend=True)
    generation = schedule["metadata"]["generation"]
    # The operator has looked at it (it writes observedGeneration) and started nothing.
    sched.wait_status("paused", "observed", lambda s: s.get("observedGeneration") == generation)
    time.sleep(2)  # a due run would be created within this time
    assert sched.names("paused") == []
    assert sched.status("paused")["lastScheduleTime"] == stamp(due - timedelta(hours=1))
    sched.patch("paused", {"suspend": False})
    sched.wait_jobs("paused", [run_name("paused", due)], "the run, once resumed")


def test_deleting_the_schedule_deletes_its_jobs(sched: Schedules, batch: Batch) -> None:
    due = minute(-2)
    sched.create("gc", daily(due), last=due - timedelta(hours=1), duration="600s")
    job = run_name("gc", due)
    sched.wait_jobs("gc", [job], "the run's job")
    batch.wait_status(job, "RUNNING")
    pods = batch.pods(job)
    assert pods
    batch.kubectl("delete", "jobschedule", "gc", "-n", batch.ns, "--wait=false")
    batch.wait_for(lambda: sched.names("gc") == [] and batch.pods(job) == [], "the job and its pod deleted", 60)


def test_invalid_schedule_is_reported(sched: Schedules, batch: Batch) -> None:
    # Five fields (the CRD's shape rule passes), but no minute 61: the controller says why.
    sched.create("bad", "61 * * * *", last=None)
    status = sched.wait_status("bad", "statusReason", lambda s: s.get("statusReason"))
    assert status["statusReason"] == "spec.schedule: minute: 61 is out of range 0-59"
    sched.wait_event("bad", "InvalidSchedule")
    sched.patch("bad", {"schedule": "0 0 1 1 *"})
    sched.wait_status("bad", "statusReason cleared", lambda s: not s.get("statusReason"))
    assert sched.names("bad") == []


def test_webhook_rejects_invalid_schedules(admission_namespace: str, operator: Any, kubectl: Any) -> None:
    body = {
        "apiVersion": GROUP,
        "kind": "JobSchedule",
        "metadata": {"name": "bad", "namespace": admission_namespace},
        "spec": {
            "schedule": "*/0 * * * *",
            "timeZone": "Mars/Olympus",
            "jobTemplate": {"spec": {"jobQueue": "q", "jobDefinition": "d"}},
        },
    }
    result = kubectl("create", "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0
    assert "spec.schedule: minute: the step in '*/0' must be 1 to 60" in result.stderr, result.stderr
    assert "spec.timeZone: unknown time zone 'Mars/Olympus'" in result.stderr, result.stderr
    body["spec"] = {**body["spec"], "schedule": "@weekly", "timeZone": "Pacific/Auckland"}
    assert kubectl("create", "-f", "-", input=json.dumps(body), check=False).returncode == 0


# Its namespace holds ``webhook_up``: a restart of the shared operator starts its loops a moment
# before its webhook serves, and the local webhook fails open (the chart's fails closed for BatchJobs:
# the create is then refused and retried), so a run created in that moment would be admitted.
def test_a_refused_run_is_reported_and_the_next_one_tried(
    admission_namespace: str, operator: Any, kubectl: Any, kget: Any, make_node: Any
) -> None:
    """A template naming a queue that does not exist: the webhook refuses the run's BatchJob."""
    b = Batch(kubectl, kget, admission_namespace, make_node)
    s = Schedules(b, queue=b.name("absent"), definition="nothing")
    due = minute(-2)
    try:
        s.create("orphan", daily(due), last=due - timedelta(hours=1))
        status = s.wait_status("orphan", "statusReason", lambda st: st.get("statusReason"))
        reason = status["statusReason"]
        assert reason.startswith(f"Run of {stamp(due)} not submitted: job {run_name('orphan', due)}: "), reason
        assert f'job queue "{s.queue}" does not exist' in reason, reason
        assert status["lastScheduleTime"] == stamp(due)  # the run is used up, not retried forever
        assert s.names("orphan") == []
        s.wait_event("orphan", "FailedCreate")
    finally:
        b.cleanup()


@pytest.mark.xdist_group("operator-restarts")
def test_a_restart_after_a_lost_status_write_does_not_submit_the_run_again(
    sched: Schedules, batch: Batch, cluster: Any
) -> None:
    """The crash window: the run's job exists but lastScheduleTime was not written. The operator is
    killed, the status is put back to that state while it is down, and a new operator starts."""
    due = minute(-2)
    before = due - timedelta(hours=1)
    sched.create("rs", daily(due), last=before, duration="600s")
    name = run_name("rs", due)
    (job,) = sched.wait_jobs("rs", [name], "the run's job")
    sched.wait_status("rs", "run recorded", lambda s: s.get("lastScheduleTime") == stamp(due))
    with operator_down(cluster, signal.SIGKILL):
        sched.set_last("rs", before)
    sched.wait_status("rs", "the run found again", lambda s: s.get("lastScheduleTime") == stamp(due))
    (again,) = sched.wait_jobs("rs", [name], "still one job")
    assert again["metadata"]["uid"] == job["metadata"]["uid"]  # the same job, not a new one
    assert "statusReason" not in sched.status("rs")


def test_cli_lists_schedules_with_their_next_run(sched: Schedules, batch: Batch, cluster: Any) -> None:
    from click.testing import CliRunner

    from kubatch.cli.main import cli

    due = minute(-2)
    sched.create("listed", daily(due), last=due - timedelta(hours=1), timeZone="UTC")
    sched.create("paused", "@hourly", last=None, suspend=True)
    sched.wait_status("listed", "run recorded", lambda s: s.get("lastScheduleTime") == stamp(due))

    def kubatch(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--kubeconfig", cluster.kubeconfig, "-n", batch.ns, *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    lines = kubatch("schedules").splitlines()
    assert lines[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "NEXT", "RUN"]
    listed = next(line for line in lines if line.startswith("listed "))
    assert f"{daily(due)}  UTC" in listed and "ago" in listed and listed.split()[-2:] == ["in", "23h"]
    paused = next(line for line in lines if line.startswith("paused "))
    assert paused.split()[-3:] == ["0", "never", "suspended"]
    items = json.loads(kubatch("schedules", "-o", "json"))["items"]
    by_name = {i["metadata"]["name"]: i for i in items}
    assert by_name["listed"]["status"]["nextScheduleTime"] == stamp(due + timedelta(days=1))
    assert by_name["paused"]["status"]["nextScheduleTime"] is None
