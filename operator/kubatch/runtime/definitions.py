"""JobDefinition revisions, stored as ControllerRevisions labelled with their definition.

Every distinct spec (ignoring `deregistered`) becomes revision n+1, named `<jd>-<n>` and labelled
`kubatch.dev/job-definition=<jd>` and `kubatch.dev/job-definition-uid=<uid of the JobDefinition>`;
its `data.spec` is the spec as registered, so jobs pinned to `name:n` are never affected by later
edits. A definition with `spec.deregistered: true` is INACTIVE: none of its revisions can be
submitted any more (running jobs are unaffected). The JobDefinition's status shows the latest
revision and ACTIVE/INACTIVE.

Revisions are not owned by the JobDefinition (garbage collection would delete them with it and
fail the jobs that still run them). When a definition is deleted (or deleted and re-created), its
revisions are *retired*: INACTIVE, kept while an unfinished job is pinned to one, then deleted by
the leader, all but the highest-numbered, which keeps the count: a definition re-created under the
same name registers the next number, never one used before. Revisions recorded by older versions
carry an owner reference to their JobDefinition; the leader replaces it with the uid label.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import LABEL_JOB_DEFINITION, View
from kubatch.core.revisions import (
    LABEL_DEFINITION_UID,
    definition_uid,
    deletable_revisions,
    next_revision,
    parse_reference,
    revision_name,
    spec_hash,
)
from kubatch.runtime.waits import wait_set

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
LABEL_SPEC_HASH = "kubatch.dev/spec-hash"
#: How often definitions with retired revisions still in use are looked at again (their jobs end).
RETIRED_RECHECK_SECONDS = 5.0


def registered_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "deregistered"}


def pinned_revisions(view: View) -> dict[str, set[int]]:
    """``ns/definition`` -> the revisions unfinished jobs are pinned to (``status.jobDefinition``)."""
    pins: dict[str, set[int]] = defaultdict(set)
    for key in list(view.active):
        job = view.jobs.get(key)
        pinned = ((job or {}).get("status") or {}).get("jobDefinition")
        if not pinned:
            continue
        try:
            ref = parse_reference(str(pinned))
        except ValueError:
            continue
        if ref.revision is not None:
            pins[f"{key.split('/', 1)[0]}/{ref.name}"].add(ref.revision)
    return pins


class DefinitionController:
    """Keeps ControllerRevisions and JobDefinition status in step with JobDefinition specs."""

    def __init__(self, kube: Kube, view: View, is_leader: Callable[[], bool] = lambda: True) -> None:
        self.kube = kube
        self.view = view
        self.is_leader = is_leader
        self.pending: set[str] = set()
        self.retired: set[str] = set()  # definitions with retired revisions left to delete
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self._pins: dict[str, set[int]] | None = None
        view.listeners.append(self._on_change)

    def _on_change(self, kind: str, typ: str, obj: dict[str, Any]) -> None:
        md = obj.get("metadata", {})
        if kind == "JobDefinition":
            self.pending.add(f"{md.get('namespace')}/{md.get('name')}")
        elif kind == "ControllerRevision":
            jd = (md.get("labels") or {}).get(LABEL_JOB_DEFINITION)
            if jd:
                self.pending.add(f"{md.get('namespace')}/{jd}")
        else:
            return
        self.wake.set()

    async def run(self) -> None:
        await self.ready.wait()
        self.pending.update(self.view.definitions)
        self.pending.update(k for k, revs in self.view.revisions.items() if revs)
        while True:
            self.wake.clear()
            keys, self.pending = self.pending, set()
            self._pins = None
            for key in sorted(keys):
                try:
                    await self.reconcile(key)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    if isinstance(e, ApiError) and e.namespace_terminating:
                        # Its namespace is going away, and the definition with it: nothing to record.
                        log.debug("job definition %s: namespace terminating", key)
                        continue
                    log.warning("job definition %s: %s", key, e)
                    self.pending.add(key)
            if self.pending:
                await asyncio.sleep(0.5)
                continue
            if self.retired:
                # Jobs pinned to retired revisions end without telling us: look again in a while.
                await wait_set(self.wake, RETIRED_RECHECK_SECONDS)
                self.pending.update(self.retired)
                continue
            await self.wake.wait()

    def pins(self, key: str) -> set[int]:
        """The revisions of ``key`` unfinished jobs are pinned to (one scan of the jobs per round)."""
        if self._pins is None:
            self._pins = pinned_revisions(self.view)
        return self._pins.get(key, set())

    async def reconcile(self, key: str) -> None:
        ns, name = key.split("/", 1)
        jd = self.view.definitions.get(key)
        revisions = self.view.revisions.get(key, {})
        uid = str((jd or {}).get("metadata", {}).get("uid") or "") or None
        own = {rev: cr for rev, cr in revisions.items() if uid is not None and definition_uid(cr) == uid}
        if jd is not None:
            assert uid is not None
            if self.is_leader():
                await self.adopt(ns, uid, own)
            await self.register(ns, name, jd, uid, own, revisions)
        await self.retire(key, ns, set(revisions), set(revisions) - set(own))

    async def adopt(self, ns: str, uid: str, own: Mapping[int, Mapping[str, Any]]) -> None:
        """Revisions recorded with an owner reference to their JobDefinition (by older versions)
        get the uid label instead: garbage collection would delete them with the definition."""
        for cr in own.values():
            md = cr.get("metadata") or {}
            if not md.get("ownerReferences") and (md.get("labels") or {}).get(LABEL_DEFINITION_UID) == uid:
                continue
            patch = {"metadata": {"ownerReferences": None, "labels": {LABEL_DEFINITION_UID: uid}}}
            try:
                updated = await self.kube.merge_patch(
                    f"/apis/apps/v1/namespaces/{ns}/controllerrevisions/{md.get('name')}", patch
                )
            except ApiError as e:
                if e.status != 404:
                    raise
                continue
            self.view.on_revision("MODIFIED", updated)

    async def register(
        self,
        ns: str,
        name: str,
        jd: Mapping[str, Any],
        uid: str,
        own: Mapping[int, Mapping[str, Any]],
        revisions: Mapping[int, Mapping[str, Any]],
    ) -> None:
        spec = registered_spec(jd.get("spec") or {})
        digest = spec_hash(spec)
        current = max(
            (
                rev
                for rev, cr in own.items()
                if (cr["metadata"].get("labels") or {}).get(LABEL_SPEC_HASH) == digest
            ),
            default=None,
        )
        latest = max(own, default=0)
        if current is None or current != latest:
            # A new spec, or a return to an older one: either way it is registered as a new revision,
            # numbered after every revision of the name (retired ones of a deleted definition too).
            rev = next_revision(revisions)
            body = {
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": revision_name(name, rev),
                    "namespace": ns,
                    "labels": {LABEL_JOB_DEFINITION: name, LABEL_SPEC_HASH: digest, LABEL_DEFINITION_UID: uid},
                },
                "revision": rev,
                "data": {"spec": spec},
            }
            try:
                created = await self.kube.create(f"/apis/apps/v1/namespaces/{ns}/controllerrevisions", body)
                self.view.on_revision("ADDED", created)
            except ApiError as e:
                if e.status != 409:
                    raise
            latest = rev
        status = {
            "revision": latest,
            "status": "INACTIVE" if (jd.get("spec") or {}).get("deregistered") else "ACTIVE",
        }
        if {k: (jd.get("status") or {}).get(k) for k in status} != status:
            updated = await self.kube.merge_patch(
                f"{GROUP_PATH}/namespaces/{ns}/jobdefinitions/{name}/status", {"status": status}
            )
            self.view.on_named(self.view.definitions, "MODIFIED", updated, namespaced=True)

    async def retire(self, key: str, ns: str, revisions: set[int], retired: set[int]) -> None:
        """Delete the retired revisions of ``key`` that no unfinished job runs (leader only); the
        definition is looked at again later while some are still in use."""
        if not retired:
            self.retired.discard(key)
            return
        doomed = deletable_revisions(revisions, retired, self.pins(key)) if self.is_leader() else []
        for rev in doomed:
            cr = self.view.revisions.get(key, {}).get(rev)
            if cr is None:
                continue
            md = cr.get("metadata") or {}
            try:
                await self.kube.delete(
                    f"/apis/apps/v1/namespaces/{ns}/controllerrevisions/{md.get('name')}", uid=md.get("uid") or None
                )
            except ApiError as e:
                if e.status not in (404, 409):
                    raise
            self.view.on_revision("DELETED", cr)
        left = retired - set(doomed) - {max(revisions, default=0)}
        if left:
            self.retired.add(key)
        else:
            self.retired.discard(key)
