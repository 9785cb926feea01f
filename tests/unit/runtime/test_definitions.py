"""The definition controller (kubatch.runtime.definitions): revisions outlive a deleted definition
while jobs run them, and a re-created definition continues the numbering."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubatch.cluster.client import ApiError
from kubatch.cluster.view import View
from kubatch.core.revisions import spec_hash
from kubatch.runtime.definitions import DefinitionController
from kubatch.runtime.jobs import resolve_definition

NS = "ns"
SPEC = {"type": "container", "containerProperties": {"image": "busybox", "command": ["true"]}}


class FakeKube:
    """ControllerRevisions by name; JobDefinition status patches are echoed back."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.revisions: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.uids = 0

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        if name in self.revisions:
            raise ApiError(409, {"reason": "AlreadyExists"}, "POST", path)
        self.uids += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = f"cr-{self.uids}"
        self.revisions[name] = obj
        return copy.deepcopy(obj)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1]
        if path.endswith("/status"):
            jd_name = path.rsplit("/", 2)[-2]
            jd = copy.deepcopy(self.view.definitions[f"{NS}/{jd_name}"])
            jd["status"] = {**(jd.get("status") or {}), **body["status"]}
            return jd
        self.calls.append(("patch", name))
        obj = self.revisions[name]
        md = obj["metadata"]
        if body["metadata"].get("ownerReferences", "keep") is None:
            md.pop("ownerReferences", None)
        md["labels"] = {**md.get("labels", {}), **body["metadata"].get("labels", {})}
        return copy.deepcopy(obj)

    async def delete(self, path: str, *, uid: str | None = None, **_: Any) -> None:
        name = path.rsplit("/", 1)[-1]
        self.calls.append(("delete", name))
        self.revisions.pop(name, None)


def definition(uid: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "d", "namespace": NS, "uid": uid}, "spec": copy.deepcopy(spec or SPEC)}


def job(name: str, status: dict[str, Any] | None = None, reference: str = "d") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"job-{name}"},
        "spec": {"jobQueue": "q", "jobDefinition": reference},
        "status": status or {},
    }


def setup(leader: bool = True) -> tuple[FakeKube, View, DefinitionController]:
    view = View()
    kube = FakeKube(view)
    return kube, view, DefinitionController(kube, view, is_leader=lambda: leader)  # type: ignore[arg-type]


def run(controller: DefinitionController, view: View, *, jd: dict[str, Any] | None = None) -> None:
    if jd is not None:
        view.on_definition("ADDED", jd)
    controller._pins = None
    asyncio.run(controller.reconcile(f"{NS}/d"))


def revision_numbers(view: View) -> list[int]:
    return sorted(view.revisions.get(f"{NS}/d", {}))


def test_revisions_carry_the_definition_uid_and_no_owner() -> None:
    kube, view, ctl = setup()
    run(ctl, view, jd=definition("a"))
    cr = kube.revisions["d-1"]
    assert cr["metadata"]["labels"]["kubatch.dev/job-definition-uid"] == "a"
    assert "ownerReferences" not in cr["metadata"]  # garbage collection must not take it with the definition
    assert view.definitions[f"{NS}/d"]["status"] == {"revision": 1, "status": "ACTIVE"}


def test_legacy_revisions_are_adopted() -> None:
    kube, view, ctl = setup()
    jd = definition("a")
    legacy = {
        "metadata": {
            "name": "d-1",
            "namespace": NS,
            "uid": "cr-legacy",
            "labels": {"kubatch.dev/job-definition": "d", "kubatch.dev/spec-hash": spec_hash(SPEC)},
            "ownerReferences": [{"kind": "JobDefinition", "name": "d", "uid": "a", "controller": True}],
        },
        "revision": 1,
        "data": {"spec": SPEC},
    }
    kube.revisions["d-1"] = copy.deepcopy(legacy)
    view.on_revision("ADDED", legacy)
    run(ctl, view, jd=jd)
    assert ("patch", "d-1") in kube.calls
    md = view.revisions[f"{NS}/d"][1]["metadata"]
    assert "ownerReferences" not in md and md["labels"]["kubatch.dev/job-definition-uid"] == "a"
    assert revision_numbers(view) == [1]  # same spec: still revision 1
    assert view.definitions[f"{NS}/d"]["status"]["revision"] == 1


def test_deleted_definition_keeps_pinned_revisions_and_the_count() -> None:
    kube, view, ctl = setup()
    run(ctl, view, jd=definition("a"))
    run(ctl, view, jd=definition("a", {**SPEC, "timeout": {"attemptDurationSeconds": 60}}))
    run(ctl, view, jd=definition("a", {**SPEC, "timeout": {"attemptDurationSeconds": 90}}))
    assert revision_numbers(view) == [1, 2, 3]
    view.on_job("ADDED", job("running", {"status": "RUNNING", "jobDefinition": "d:1"}))
    view.on_job("ADDED", job("done", {"status": "SUCCEEDED", "jobDefinition": "d:2"}))

    view.on_definition("DELETED", definition("a"))
    run(ctl, view)
    # 1 runs a job, 3 is the highest number; 2 only served a finished job.
    assert revision_numbers(view) == [1, 3]
    assert ("delete", "d-2") in kube.calls
    assert ctl.retired == {f"{NS}/d"}
    definition_of_running, error = resolve_definition(view, view.jobs[f"{NS}/running"])
    assert error is None and definition_of_running is not None
    assert definition_of_running.resolved == "d:1" and definition_of_running.spec == SPEC
    # A new job cannot use a deleted definition's revisions.
    found, error = resolve_definition(view, job("new", reference="d:1"))
    assert found is None and error and "INACTIVE" in error

    # Its job ends: revision 1 goes, 3 stays to keep the count.
    view.on_job("MODIFIED", job("running", {"status": "SUCCEEDED", "jobDefinition": "d:1"}))
    run(ctl, view)
    assert revision_numbers(view) == [3]
    assert ctl.retired == set()

    # Re-created under the same name: revision 4, never 1; then the old 3 goes.
    run(ctl, view, jd=definition("b"))
    assert 4 in revision_numbers(view)
    assert view.definitions[f"{NS}/d"]["status"]["revision"] == 4
    run(ctl, view)
    assert revision_numbers(view) == [4]
    found, error = resolve_definition(view, job("newer"))
    assert error is None and found is not None and found.resolved == "d:4"


def test_recreated_definition_waits_for_its_own_revision() -> None:
    """Only retired revisions under the name, the new definition's first not recorded yet: a new job
    waits (neither fails nor takes a retired revision)."""
    _, view, ctl = setup()
    run(ctl, view, jd=definition("a"))
    view.on_definition("DELETED", definition("a"))
    view.on_definition("ADDED", definition("b"))
    assert resolve_definition(view, job("new")) == (None, None)


def test_standby_replicas_delete_nothing() -> None:
    kube, view, ctl = setup(leader=False)
    run(ctl, view, jd=definition("a"))
    run(ctl, view, jd=definition("a", {**SPEC, "timeout": {"attemptDurationSeconds": 60}}))
    view.on_definition("DELETED", definition("a"))
    run(ctl, view)
    assert not [c for c in kube.calls if c[0] == "delete"]
    assert ctl.retired == {f"{NS}/d"}  # looked at again, and acted on once this replica leads
