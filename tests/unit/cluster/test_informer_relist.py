"""The informer against a fake API server: 410 Gone (as a watch ERROR event and as an HTTP status)
leads to a relist that loses no event: changes, creations and deletions made while the watch was
expired all reach the handler, deletions in a form the view can route (labels kept)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from kubatch.cluster.informer import Informer, known
from kubatch.cluster.view import LABEL_JOB_NAME, View
from tests.unit.cluster.fakeapi import FakeApi, pod

Event = tuple[str, str, str]  # (type, name, uid)


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def _run_through_relist(informer: Informer, gap: Callable[[], None], done: Callable[[], bool]) -> None:
    """Run ``informer`` until ``done``; ``gap`` changes the server just before its relist."""
    original_list = informer._list

    async def list_after_gap() -> str:
        if informer.relists == 1:
            gap()
        return await original_list()

    informer._list = list_after_gap  # type: ignore[method-assign]
    task = asyncio.create_task(informer.run())
    try:
        await _until(done)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _gap(api: FakeApi) -> None:
    """While the watch is expired: a-1 changes, b-1 is deleted, c-1 is deleted and re-created under
    the same name (new uid), d-1 appears."""
    api.objects.pop("uid-b")
    api.objects.pop("uid-c")
    api.objects["uid-a"] = pod("a-1", "uid-a", 20, phase="Succeeded")
    api.objects["uid-c2"] = pod("c-1", "uid-c2", 21)
    api.objects["uid-d"] = pod("d-1", "uid-d", 22)
    api.list_rv = 22


@pytest.mark.parametrize("expiry", ["error-event", "http-status"])
async def test_410_relists_without_losing_events(expiry: str) -> None:
    api = FakeApi()
    for name, uid, rv in (("a-1", "uid-a", 1), ("b-1", "uid-b", 2), ("c-1", "uid-c", 3)):
        api.objects[uid] = pod(name, uid, rv)
    api.list_rv = 3
    expired: int | list[dict[str, Any]] = (
        [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}]
        if expiry == "error-event"
        else 410
    )
    # First watch: one live event, then the stream ends; the second watch says 410.
    api.watches = [
        [{"type": "MODIFIED", "object": pod("a-1", "uid-a", 5, phase="Running")}],
        expired,
    ]
    seen: list[Event] = []
    view = View()

    def handler(typ: str, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        seen.append((typ, md["name"], md["uid"]))
        view.on_pod(typ, obj)

    async with api.serve() as kube:
        informer = Informer(kube, "/api/v1/pods", handler, label_selector=LABEL_JOB_NAME, name="pods")
        # the changes land while the watch is expired, before the relist
        await _run_through_relist(informer, lambda: _gap(api), lambda: informer.relists == 2)

    assert informer.synced.is_set()
    assert api.list_calls == 2
    # the first watch resumed from the list's resourceVersion, the second from the last event's
    watch_rvs = [q["resourceVersion"] for _, _, q in api.log if q.get("watch") == "1"]
    assert watch_rvs[:2] == ["3", "5"]
    after = seen[seen.index(("MODIFIED", "a-1", "uid-a")) + 1 :]
    assert set(after) == {
        ("DELETED", "b-1", "uid-b"),
        ("DELETED", "c-1", "uid-c"),
        ("MODIFIED", "a-1", "uid-a"),
        ("ADDED", "c-1", "uid-c2"),
        ("ADDED", "d-1", "uid-d"),
    }
    # deletions first: the re-created c-1 must survive its predecessor's deletion
    assert after.index(("DELETED", "c-1", "uid-c")) < after.index(("ADDED", "c-1", "uid-c2"))
    # the view (keyed by job label) ends exactly like the server
    assert {name: p["metadata"]["uid"] for name, p in view.pods["ns/j"].items()} == {
        "a-1": "uid-a",
        "c-1": "uid-c2",
        "d-1": "uid-d",
    }
    assert view.pods["ns/j"]["a-1"]["status"]["phase"] == "Succeeded"
    assert informer.known.keys() == {"uid-a", "uid-c2", "uid-d"}


async def test_deletions_found_by_relist_keep_labels_for_routing() -> None:
    """A relist-found deletion carries the last labels seen: the view, which files pods under their
    job label, really drops the pod (before the fix it got a label-less event and kept a ghost)."""
    api = FakeApi()
    api.objects["uid-x"] = pod("x-1", "uid-x", 1, job="jobx")
    api.watches = [410]
    events: list[dict[str, Any]] = []

    def handler(typ: str, obj: dict[str, Any]) -> None:
        if typ == "DELETED":
            events.append(obj)

    async with api.serve() as kube:
        informer = Informer(kube, "/api/v1/pods", handler, name="pods")
        await _run_through_relist(informer, api.objects.clear, lambda: bool(events))
    (gone,) = events
    assert gone["metadata"] == {
        "name": "x-1",
        "namespace": "ns",
        "uid": "uid-x",
        "labels": {"kubatch.dev/job-name": "jobx"},
        "resourceVersion": "1",
    }


async def test_a_large_list_is_handed_on_page_by_page_without_managed_fields() -> None:
    """Objects reach the handler as their page arrives (the list is never held whole), without
    metadata.managedFields, and the informer remembers each compactly (a tombstone on demand)."""
    api = FakeApi()
    for i in range(1200):
        obj = pod(f"p-{i:04d}", f"uid-{i:04d}", i + 1)
        obj["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
        api.objects[obj["metadata"]["uid"]] = obj
    api.list_rv = 1200
    handled: list[tuple[int, dict[str, Any]]] = []

    async with api.serve() as kube:
        informer = Informer(kube, "/api/v1/pods", lambda typ, obj: handled.append((api.list_calls, obj)), name="pods")
        task = asyncio.create_task(informer.run())
        try:
            await _until(lambda: informer.synced.is_set())
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert api.list_calls == 3  # pages of 500
    assert [calls for calls, _ in handled[::500]] == [1, 2, 3]  # each page handled before the next is asked
    assert all("managedFields" not in obj["metadata"] for _, obj in handled)
    assert len(informer.known) == 1200


async def test_a_handler_that_remembers_gives_the_records_and_none_are_kept_twice() -> None:
    """With ``remembered`` (the view of a million jobs) the informer keeps no records; a relist reports
    as deleted what the handler holds and the list lacks, except a copy newer than the list (our own
    write since, which the watch will bring)."""
    api = FakeApi()
    for name, uid, rv in (("a-1", "uid-a", 1), ("b-1", "uid-b", 2)):
        api.objects[uid] = pod(name, uid, rv)
    api.list_rv = 2
    api.watches = [410]
    store: dict[str, dict[str, Any]] = {}
    deleted: list[str] = []

    def handler(typ: str, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        if typ == "DELETED":
            deleted.append(uid)
            store.pop(uid, None)
        else:
            store[uid] = obj

    async with api.serve() as kube:
        informer = Informer(
            kube, "/api/v1/pods", handler, name="pods", remembered=lambda: {u: known(o) for u, o in store.items()}
        )

        def gap() -> None:
            api.objects.pop("uid-b")  # deleted while the watch was down
            api.list_rv = 5
            store["uid-n"] = pod("n-1", "uid-n", 7)  # created by us after the list's version

        await _run_through_relist(informer, gap, lambda: informer.relists == 2)
    assert deleted == ["uid-b"]
    assert set(store) == {"uid-a", "uid-n"}
    assert informer.known == {}
    assert informer.listed == 1
