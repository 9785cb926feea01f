"""The view's pods: a pod we deleted stays gone until the watch confirms it.

Proves: after our own DELETE, the pod's later events (deletionTimestamp set, the kubelet's last
status) do not bring it back into the job's pods; the watch's DELETED clears the tombstone; a new
pod of the same name (a new uid) is seen at once; the tombstones are bounded.
"""

from __future__ import annotations

from typing import Any

from kubatch.cluster.view import View


def pod(uid: str, rv: str, **extra: Any) -> dict[str, Any]:
    md = {"name": "j-a1", "namespace": "ns", "uid": uid, "resourceVersion": rv, "labels": {"kubatch.dev/job-name": "j"}}
    md.update(extra)
    return {"metadata": md, "spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}}


def test_deleted_pod_is_not_brought_back_by_late_events() -> None:
    view = View()
    view.on_pod("ADDED", pod("u1", "1"))
    assert "j-a1" in view.pods["ns/j"]
    view.pod_deleted("ns", "j-a1", "u1", "j")
    assert "ns/j" not in view.pods
    view.on_pod("MODIFIED", pod("u1", "2", deletionTimestamp="2027-01-15T08:00:03Z", deletionGracePeriodSeconds=0))
    assert "ns/j" not in view.pods, "a late event of a pod we deleted does not resurrect it"
    view.on_pod("DELETED", pod("u1", "3"))
    assert "u1" not in view.deleted_pods


def test_a_new_pod_of_the_same_name_is_seen() -> None:
    view = View()
    view.on_pod("ADDED", pod("u1", "1"))
    view.pod_deleted("ns", "j-a1", "u1", "j")
    view.on_pod("ADDED", pod("u2", "5"))
    assert view.pods["ns/j"]["j-a1"]["metadata"]["uid"] == "u2"


def test_tombstones_are_bounded() -> None:
    view = View()
    for i in range(10):
        view.pod_deleted("ns", f"p{i}", f"u{i}", "j", keep_tombstone=4)
    assert list(view.deleted_pods) == ["u6", "u7", "u8", "u9"]


def test_the_echo_of_our_own_write_is_not_news() -> None:
    """The watch's copy of an object our own request returned (same resourceVersion) changes nothing
    and makes no job dirty again; a newer version does."""
    view = View()
    job = {"metadata": {"name": "j", "namespace": "ns", "uid": "j1", "resourceVersion": "7"}, "spec": {}}
    view.put_job({**job, "status": {"status": "RUNNABLE"}})
    view.on_pod("ADDED", pod("u1", "8"))
    view.dirty.clear()
    kept = view.jobs["ns/j"]
    view.on_job("MODIFIED", {**job, "status": {"status": "RUNNABLE"}})
    view.on_pod("ADDED", pod("u1", "8"))
    assert not view.dirty and view.jobs["ns/j"] is kept
    view.on_pod("MODIFIED", pod("u1", "9"))
    assert view.dirty == {"ns/j"}
    view.on_job("MODIFIED", {**job, "metadata": {**job["metadata"], "resourceVersion": "10"}, "status": {}})
    assert view.jobs["ns/j"] is not kept
