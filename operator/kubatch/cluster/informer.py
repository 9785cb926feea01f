"""List+watch informers: keep a local copy of one resource collection current, with a clear
"synced" moment (the initial list is complete), bookmarks, and a relist on 410 Gone.

Used for the high-cardinality kinds (BatchJobs, Pods) where kopf's per-object workers would cost
too much (see design.md); every event is handed to a callback as (type, object).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from kubatch.cluster.client import ApiError, Kube

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]


def tombstone(obj: dict[str, Any]) -> dict[str, Any]:
    """What a DELETED event found by a relist carries: the identity of the last copy seen (metadata
    name, namespace, uid, labels) and its top-level scalars (e.g. a ControllerRevision's
    `revision`), so handlers can route it exactly as they route a watched deletion."""
    md = obj.get("metadata", {})
    out: dict[str, Any] = {k: v for k, v in obj.items() if not isinstance(v, dict | list)}
    out["metadata"] = {
        k: md[k] for k in ("name", "namespace", "uid", "labels", "resourceVersion") if md.get(k) is not None
    }
    return out


Known = tuple[Any, Any, Any, Any, tuple[tuple[str, Any], ...]]
"""What the informer remembers of an object for its tombstone, compactly (it keeps one per object):
name, namespace, resourceVersion, labels (the object's own dict, shared), top-level scalars."""

_SCALARS: dict[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]] = {}


def known(obj: dict[str, Any], previous: Known | None = None) -> Known:
    """The compact record of ``obj`` (see ``Known``); its top-level scalars (apiVersion, kind, ...)
    are shared between objects that have the same, its name and namespace with ``previous`` (the
    record of an older version) when equal, and a namespace is one string object for all."""
    md = obj.get("metadata", {})
    scalars = tuple((k, v) for k, v in obj.items() if not isinstance(v, dict | list))
    if len(_SCALARS) < 10_000:
        scalars = _SCALARS.setdefault(scalars, scalars)
    name, namespace = md.get("name"), md.get("namespace")
    if previous is not None and previous[0] == name:
        name = previous[0]
    if type(namespace) is str:
        namespace = sys.intern(namespace)
    return (name, namespace, md.get("resourceVersion"), md.get("labels"), scalars)


def expand(uid: str, rec: Known) -> dict[str, Any]:
    """The tombstone (``tombstone``'s form) of the object recorded as ``rec``."""
    name, namespace, rv, labels, scalars = rec
    out: dict[str, Any] = dict(scalars)
    fields = (("name", name), ("namespace", namespace), ("uid", uid), ("labels", labels), ("resourceVersion", rv))
    out["metadata"] = {k: v for k, v in fields if v is not None}
    return out


def _newer(version: Any, than: str) -> bool:
    try:
        return int(version) > int(than)
    except (TypeError, ValueError):
        return False


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without ``metadata.managedFields``, which kubatch never reads (a large share of an
    object's memory: the informers keep every job, pod and node)."""
    md = obj.get("metadata")
    if isinstance(md, dict):
        md.pop("managedFields", None)
    return obj


class Informer:
    """Mirror one collection into `handler` calls: ADDED/MODIFIED/DELETED, plus SYNCED once listed.

    On (re)list, objects that vanished while the watch was down are reported as DELETED, so the
    consumer never holds a stale object.
    """

    def __init__(
        self,
        kube: Kube,
        path: str,
        handler: Handler,
        *,
        label_selector: str | None = None,
        name: str = "",
        remembered: Callable[[], Mapping[str, Known]] | None = None,
    ) -> None:
        self.kube = kube
        self.path = path
        self.handler = handler
        self.label_selector = label_selector
        self.name = name or path
        self.synced = asyncio.Event()
        self.known: dict[str, Known] = {}  # uid -> compact record, to report deletions found by a relist
        # A handler that keeps every object it was handed can give those records when a relist needs
        # them: then none are kept here (a million queued jobs would be held twice).
        self.remembered = remembered
        self.listed = 0  # objects of the last list
        self.relists = 0
        self.missing = False  # the last list or watch found no such collection (404)

    @staticmethod
    def key(obj: dict[str, Any]) -> str:
        md = obj.get("metadata", {})
        return f"{md.get('namespace', '')}/{md.get('name', '')}"

    async def _list(self) -> str:
        """List page by page, handing each object on as its page arrives (the collection is never
        held whole); then report what vanished. An object deleted and re-created under the same
        name while the watch was down is reported deleted before its successor is added (handlers
        keyed by name would otherwise drop the new one)."""
        previous = self.remembered() if self.remembered is not None else self.known
        by_name = {(rec[1], rec[0]): uid for uid, rec in previous.items()} if previous else {}
        seen: dict[str, Known] = {}  # uid -> record of what the list holds (none when remembered)
        listed: set[str] = set()  # uids the list holds, when the handler remembers them
        gone: set[str] = set()
        rv = ""
        async for items, page_rv in self.kube.list_pages(self.path, label_selector=self.label_selector):
            rv = page_rv
            for obj in items:
                strip(obj)
                md = obj["metadata"]
                uid = md["uid"]
                if self.remembered is None:
                    seen[uid] = known(obj)
                else:
                    listed.add(uid)
                if uid not in previous:
                    replaced = by_name.get((md.get("namespace"), md.get("name")))
                    if replaced is not None and replaced not in gone:
                        gone.add(replaced)
                        self.handler("DELETED", expand(replaced, previous[replaced]))
                self.handler("ADDED" if uid not in previous else "MODIFIED", obj)
        present = seen.keys() if self.remembered is None else listed
        for uid, rec in previous.items():
            # A record newer than the list (the handler's copy of our own write made since) is not
            # missing from it: the watch from the list's version brings it.
            if uid not in present and uid not in gone and not _newer(rec[2], rv):
                self.handler("DELETED", expand(uid, rec))
        self.known = seen
        self.listed = len(present)
        self.relists += 1
        return rv

    async def run(self) -> None:
        """List, then watch forever; relist after 410 Gone or persistent errors."""
        backoff = 0.5
        rv = ""
        while True:
            try:
                if not rv:
                    rv = await self._list()
                    if not self.synced.is_set():
                        log.info("informer %s synced (%d objects)", self.name, self.listed)
                        self.synced.set()
                async for ev in self.kube.watch(self.path, resource_version=rv, label_selector=self.label_selector):
                    typ = ev.get("type")
                    obj = ev.get("object", {})
                    if typ == "BOOKMARK":
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        continue
                    if typ == "ERROR":
                        code = obj.get("code")
                        if code == 410:
                            log.info("informer %s: watch expired (410), relisting", self.name)
                            rv = ""
                            break
                        raise ApiError(int(code or 0), obj, "WATCH", self.path)
                    strip(obj)
                    md = obj.get("metadata", {})
                    rv = md.get("resourceVersion", rv)
                    uid = md.get("uid", "")
                    if self.remembered is None:  # else the handler keeps it
                        if typ == "DELETED":
                            self.known.pop(uid, None)
                        else:
                            self.known[uid] = known(obj, self.known.get(uid))
                    if typ in ("ADDED", "MODIFIED", "DELETED"):
                        self.handler(typ, obj)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status == 410:
                    log.info("informer %s: watch expired (410), relisting", self.name)
                    rv = ""
                    continue
                # A collection that does not exist (a CRD not installed yet) is said once, then quietly retried.
                missing = e.status == 404
                (log.debug if missing and self.missing else log.warning)(
                    "informer %s: %s; retrying in %.1fs", self.name, e, backoff
                )
                self.missing = missing
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                if e.status in (0, 500, 503, 504):
                    rv = ""  # after an outage, relist to catch what the watch missed
            except Exception as e:  # network errors and truncated streams
                log.warning("informer %s: %r; retrying in %.1fs", self.name, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
