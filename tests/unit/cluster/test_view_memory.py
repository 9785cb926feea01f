"""What keeps a view of a million jobs small: a job is stored without managedFields and with the
values many jobs share as one string object each, its values unchanged; the informer remembers each
object as a compact record whose tombstone is what it used to keep."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubatch.cluster.informer import expand, known, tombstone
from kubatch.cluster.view import View, compact_job


def job(i: int) -> dict[str, Any]:
    ts = f"2026-12-04T10:00:{i:02d}Z"
    uid = f"uid-{i}"
    # Decoded from JSON, as the informer and the client hand objects over (fresh strings).
    return json.loads(
        json.dumps(
            {
                "apiVersion": "kubatch.dev/v1alpha1",
                "kind": "BatchJob",
                "metadata": {
                    "name": f"j{i}",
                    "namespace": "team-a",
                    "uid": uid,
                    "resourceVersion": str(10 + i),
                    "creationTimestamp": ts,
                    "labels": {"kubatch.dev/schedule": "nightly"},
                    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                },
                "spec": {"jobQueue": "q", "jobDefinition": "work", "shareIdentifier": "blue"},
                "status": {
                    "status": "RUNNABLE",
                    "jobId": uid,
                    "createdAt": ts,
                    "queuedAt": ts,
                    "jobDefinition": "work:1",
                },
            }
        )
    )


def test_a_stored_job_keeps_its_values_and_shares_repeated_strings() -> None:
    a, b = job(1), job(2)
    want = copy.deepcopy(a)
    del want["metadata"]["managedFields"]
    view = View()
    view.on_job("ADDED", a)
    view.on_job("ADDED", b)
    stored_a, stored_b = view.jobs["team-a/j1"], view.jobs["team-a/j2"]
    assert stored_a == want
    for section, field in (
        ("metadata", "namespace"),
        ("spec", "jobQueue"),
        ("status", "status"),
        ("status", "jobDefinition"),
    ):
        assert stored_a[section][field] is stored_b[section][field]
    assert stored_a["status"]["jobId"] is stored_a["metadata"]["uid"]
    assert stored_a["status"]["queuedAt"] is stored_a["metadata"]["creationTimestamp"]
    assert compact_job({"kind": "NoMetadata"}) == {"kind": "NoMetadata"}


def test_the_informers_compact_record_gives_the_same_tombstone() -> None:
    for obj in (
        job(3),
        {"kind": "ControllerRevision", "revision": 4, "metadata": {"name": "r", "uid": "u"}, "data": {}},
    ):
        uid = obj["metadata"]["uid"]
        assert expand(uid, known(obj)) == tombstone(obj)


def test_jobs_with_equal_specs_share_one_and_others_keep_their_own() -> None:
    view = View()
    a, b, c = job(4), job(5), job(6)
    c["spec"]["parameters"] = {"size": "3"}
    for obj in (a, b, c):
        view.on_job("ADDED", obj)
    stored = [view.jobs[f"team-a/j{i}"]["spec"] for i in (4, 5, 6)]
    assert stored[0] is stored[1]
    assert stored[2] is not stored[0]
    common = {"jobQueue": "q", "jobDefinition": "work", "shareIdentifier": "blue"}
    assert stored[2] == {**common, "parameters": {"size": "3"}}
    assert stored[0] == common


def test_a_written_status_is_kept_once() -> None:
    """After our own write the job holds the API's status object, not a second equal copy."""
    view = View()
    submitted = job(7)
    del submitted["status"]
    view.on_job("ADDED", submitted)
    decided = json.loads(json.dumps(job(7)["status"]))
    view.set_status("team-a/j7", decided)
    assert view.written_status("team-a/j7") == {} and view.jobs["team-a/j7"]["status"] is decided
    response = job(7)
    response["metadata"]["resourceVersion"] = "99"
    view.put_job(response)
    assert view.written_status("team-a/j7") is response["status"]
    view.settle("team-a/j7", response["status"])
    stored = view.jobs["team-a/j7"]
    assert stored["status"] is response["status"] is view.written_status("team-a/j7")
    assert stored["status"] == decided
    assert "team-a/j7" not in view.overlay
    assert view.written == {}, "no job without an overlay keeps a second entry"
    assert stored["metadata"]["resourceVersion"] == "99"


def test_a_new_version_keeps_the_identity_strings_the_informer_record_holds() -> None:
    view = View()
    first = job(8)
    record = known(first)
    view.on_job("ADDED", first)
    newer = job(8)
    newer["metadata"]["resourceVersion"] = "100"
    newer["status"]["status"] = "STARTING"
    view.on_job("MODIFIED", newer)
    stored = view.jobs["team-a/j8"]["metadata"]
    assert stored["resourceVersion"] == "100"
    assert stored["name"] is record[0]
    assert stored["uid"] is first["metadata"]["uid"]
    assert view.jobs["team-a/j8"]["status"]["jobId"] is first["metadata"]["uid"]
    again = known(job(8), record)
    assert again[0] is record[0] and again[1] is record[1]
    assert expand("uid-8", again) == tombstone(job(8))
