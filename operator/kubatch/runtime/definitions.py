"""JobDefinition revisions, stored as ControllerRevisions owned by the JobDefinition.

Every distinct spec (ignoring `deregistered`) becomes revision n+1, named `<jd>-<n>` and labelled
`kubatch.dev/job-definition=<jd>`; its `data.spec` is the spec as registered, so jobs pinned to
`name:n` are never affected by later edits. A definition with `spec.deregistered: true` is
INACTIVE: none of its revisions can be submitted any more (running jobs are unaffected).
The JobDefinition's status shows the latest revision and ACTIVE/INACTIVE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from kubatch.cluster.client import ApiError, Kube
from kubatch.cluster.view import LABEL_JOB_DEFINITION, View
from kubatch.core.revisions import next_revision, revision_name, spec_hash

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
LABEL_SPEC_HASH = "kubatch.dev/spec-hash"


def registered_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "deregistered"}


class DefinitionController:
    """Keeps ControllerRevisions and JobDefinition status in step with JobDefinition specs."""

    def __init__(self, kube: Kube, view: View) -> None:
        self.kube = kube
        self.view = view
        self.pending: set[str] = set()
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
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
        while True:
            self.wake.clear()
            keys, self.pending = self.pending, set()
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
            await self.wake.wait()

    async def reconcile(self, key: str) -> None:
        jd = self.view.definitions.get(key)
        if jd is None:
            return  # its ControllerRevisions go with it (ownerReferences)
        ns, name = key.split("/", 1)
        spec = registered_spec(jd.get("spec") or {})
        digest = spec_hash(spec)
        revisions = self.view.revisions.get(key, {})
        current = max(
            (
                rev
                for rev, cr in revisions.items()
                if (cr["metadata"].get("labels") or {}).get(LABEL_SPEC_HASH) == digest
            ),
            default=None,
        )
        latest = max(revisions, default=0)
        if current is None or current != latest:
            # A new spec, or a return to an older one: either way it is registered as a new revision.
            rev = next_revision(revisions)
            body = {
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": revision_name(name, rev),
                    "namespace": ns,
                    "labels": {LABEL_JOB_DEFINITION: name, LABEL_SPEC_HASH: digest},
                    "ownerReferences": [
                        {
                            "apiVersion": "kubatch.dev/v1alpha1",
                            "kind": "JobDefinition",
                            "name": name,
                            "uid": jd["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
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
