"""Deleting a JobDefinition (AWS: DeregisterJobDefinition) never fails the jobs pinned to one of its
revisions: the ControllerRevision stays until they finish. A definition re-created under the same
name continues the revision numbers."""

from __future__ import annotations

from tests.integration.batch import Batch

LABEL = "kubatch.dev/job-definition"


def revisions(batch: Batch, name: str) -> list[int]:
    items = batch.kget("controllerrevisions", "-n", batch.ns, "-l", f"{LABEL}={name}")["items"]
    return sorted(int(cr["revision"]) for cr in items)


def definition_revision(batch: Batch, name: str) -> int:
    return int((batch.kget("jobdefinition", name, "-n", batch.ns).get("status") or {}).get("revision") or 0)


def test_jobs_of_a_deleted_definition_run_their_pinned_revision(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=1)])
    batch.container_definition("gone", command=["echo", "v1"])
    batch.job("running", q, "gone", duration="20s")
    batch.wait_status("running", "RUNNING")
    batch.job("waiting", q, "gone", duration="1s")  # no room on the one-vCPU node: RUNNABLE
    batch.wait_status("waiting", "RUNNABLE")
    assert batch.status("waiting")["jobDefinition"] == "gone:1"
    batch.container_definition("gone", command=["echo", "v2"])
    batch.wait_for(lambda: definition_revision(batch, "gone") == 2, "revision 2")

    batch.kubectl("delete", "jobdefinition", "gone", "-n", batch.ns, "--wait=true")
    # A new submission cannot use it any more ...
    batch.job("late", q, "gone:1")
    late = batch.wait_done("late")
    assert late["status"] == "FAILED" and "gone" in late["statusReason"], late
    # ... but revision 1 stays for its jobs (2 stays too: the highest number keeps the count).
    assert revisions(batch, "gone") == [1, 2]

    for name in ("running", "waiting"):
        st = batch.wait_done(name, timeout=120)
        assert st["status"] == "SUCCEEDED", st
        assert st["jobDefinition"] == "gone:1"
    pods = [p for p in batch.pods("waiting")]
    if pods:  # finished pods may already be cleaned up
        assert pods[0]["spec"]["containers"][0]["args"] == ["echo", "v1"]
    # Its last job done, revision 1 goes (the controller looks at retired revisions every few seconds).
    batch.wait_for(lambda: revisions(batch, "gone") == [2], "revision 1 deleted once unused", timeout=60)


def test_recreated_definition_continues_the_revision_numbers(batch: Batch) -> None:
    q = batch.queue([batch.environment()])
    batch.container_definition("again", command=["echo", "v1"])
    batch.container_definition("again", command=["echo", "v2"])
    batch.wait_for(lambda: definition_revision(batch, "again") == 2, "revision 2")
    batch.kubectl("delete", "jobdefinition", "again", "-n", batch.ns, "--wait=true")
    batch.wait_for(lambda: revisions(batch, "again") == [2], "unused retired revision 1 deleted", timeout=60)

    batch.container_definition("again", command=["echo", "v3"])
    batch.wait_for(lambda: definition_revision(batch, "again") == 3, "re-created definition at revision 3")
    batch.job("new", q, "again")
    st = batch.wait_done("new")
    assert st["status"] == "SUCCEEDED", st
    assert st["jobDefinition"] == "again:3"
    # The old highest revision is no longer needed to keep the count.
    batch.wait_for(lambda: revisions(batch, "again") == [3], "old revision 2 deleted", timeout=60)
    # The retired revision cannot be submitted.
    batch.job("old", q, "again:2")
    old = batch.wait_done("old")
    assert old["status"] == "FAILED" and "again:2" in old["statusReason"], old
