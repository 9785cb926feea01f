"""The job definition operations against the API server, as the caller: RegisterJobDefinition,
DeregisterJobDefinition, DescribeJobDefinitions.

- **Register** creates the JobDefinition, or replaces the spec of the existing one (a new
  revision), then waits (up to 30 s) for kubatch's operator to record the revision in the status,
  and answers with it. Where AWS registers a new revision even for an unchanged definition, kubatch
  answers with the current one (revisions are per distinct spec). A definition that was
  deregistered is deleted and created again: deregistering cannot be undone in kubatch, and the
  new object continues the numbering (``kubatch.core.revisions``).
- **Deregister** sets ``spec.deregistered``: kubatch deregisters a definition as a whole, so it
  takes the name, or the latest revision (``name:rev``, an ARN); an older revision alone is refused.
- **Describe** shows every revision (the ControllerRevisions ``<name>-<rev>``, which the caller
  must be allowed to list; otherwise only each definition's latest revision, from the
  JobDefinition), by ``jobDefinitions`` (``name:rev`` or ARNs), ``jobDefinitionName`` or all of the
  namespace, filtered by ``status``, in pages of ``maxResults`` (1 to 100, default 100).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping
from typing import Any

import orjson

from kubatch.awsapi import definitions
from kubatch.awsapi.arns import Arns
from kubatch.awsapi.errors import ClientException, ServerException, from_kube
from kubatch.awsapi.job_ops import forget_definition
from kubatch.awsapi.protocol import JSON, Call, optional_int, optional_str, required_str, string_list
from kubatch.awsapi.server import Context, Handler
from kubatch.cluster.client import ApiError, Kube
from kubatch.core.revisions import LABEL_JOB_DEFINITION, stored_records

GROUP_PATH = "/apis/kubatch.dev/v1alpha1"
REVISION_WAIT = 30.0


def definitions_path(namespace: str, name: str | None = None) -> str:
    base = f"{GROUP_PATH}/namespaces/{namespace}/jobdefinitions"
    return f"{base}/{name}" if name else base


def revisions_path(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/controllerrevisions"


async def _get(kube: Kube, path: str, action: str) -> JSON | None:
    try:
        result: JSON = await kube.get(path)
    except ApiError as e:
        if e.status == 404:
            return None
        raise from_kube(e, action) from None
    return result


async def _write(kube: Kube, method: str, path: str, body: JSON, action: str) -> JSON:
    try:
        result: JSON = await kube.request(method, path, params={"fieldValidation": "Strict"}, body=body, retries=0)
    except ApiError as e:
        raise from_kube(e, action) from None
    return result


async def wait_revision(kube: Kube, path: str, previous: int | None, timeout: float = REVISION_WAIT) -> int:
    """The revision kubatch records for a spec just stored at ``path``: the first one recorded
    after ``previous`` (a new spec is always numbered after every revision of the name)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        obj = await _get(kube, path, "batch:RegisterJobDefinition")
        revision = ((obj or {}).get("status") or {}).get("revision")
        if revision and (previous is None or int(revision) > previous):
            return int(revision)
        if time.monotonic() > deadline:
            raise ServerException(
                f"the job definition was stored, but kubatch did not register its revision within {timeout:.0f} s "
                "(is the kubatch operator running?)"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def register_job_definition(ctx: Context, call: Call) -> JSON:
    action = "batch:RegisterJobDefinition"
    manifest = definitions.definition_manifest(call.body, ctx.namespace)
    name = manifest["metadata"]["name"]
    path = definitions_path(ctx.namespace, name)
    for _ in range(3):
        existing = await _get(ctx.user, path, action)
        if existing is not None and definitions.definition_status(existing) == "INACTIVE":
            try:
                await ctx.user.delete(path, uid=existing["metadata"]["uid"])
            except ApiError as e:
                raise from_kube(e, action) from None
            await _gone(ctx.user, path)
            existing = None
        try:
            if existing is None:
                stored = await _write(ctx.user, "POST", definitions_path(ctx.namespace), manifest, action)
            else:
                replaced = {**existing, "spec": manifest["spec"]}
                meta = dict(existing["metadata"])
                if manifest["metadata"].get("annotations"):
                    meta["annotations"] = {**(meta.get("annotations") or {}), **manifest["metadata"]["annotations"]}
                replaced["metadata"] = meta
                replaced.pop("status", None)
                stored = await _write(ctx.user, "PUT", path, replaced, action)
        except ClientException as e:
            if "the object has been modified" in e.message or "already exists" in e.message:
                continue  # a concurrent registration: read again
            raise
        if existing is None:
            revision = await wait_revision(ctx.user, path, None)
        elif stored["metadata"].get("generation") == existing["metadata"].get("generation"):
            revision = int((existing.get("status") or {}).get("revision") or 0) or await wait_revision(
                ctx.user, path, None
            )  # the same spec: its revision
        else:
            revision = await wait_revision(ctx.user, path, int((existing.get("status") or {}).get("revision") or 0))
        forget_definition(ctx, name)
        aws_name = call.body["jobDefinitionName"]
        return {
            "jobDefinitionName": aws_name,
            "jobDefinitionArn": Arns(ctx.config.region, ctx.config.account).job_definition(aws_name, revision),
            "revision": revision,
        }
    raise ClientException(f"job definition {call.body['jobDefinitionName']} is being changed concurrently; retry")


async def _gone(kube: Kube, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while await _get(kube, path, "batch:RegisterJobDefinition") is not None:
        if time.monotonic() > deadline:
            raise ServerException("the deregistered job definition is still being deleted; retry")
        await asyncio.sleep(0.1)


async def deregister_job_definition(ctx: Context, call: Call) -> JSON:
    action = "batch:DeregisterJobDefinition"
    value = required_str(call.body, "jobDefinition")
    _, name, revision = definitions.reference(value)
    path = definitions_path(ctx.namespace, name)
    existing = await _get(ctx.user, path, action)
    if existing is None:
        raise ClientException(f"JobDefinition {value} not found.")
    latest = (existing.get("status") or {}).get("revision")
    if revision is not None and latest is not None and revision != int(latest):
        raise ClientException(
            f"{value}: kubatch deregisters a job definition as a whole, by its name or its latest revision "
            f"({name}:{latest}); revision {revision} cannot be deregistered alone"
        )
    if definitions.definition_status(existing) == "INACTIVE":
        return {}
    try:
        await ctx.user.merge_patch(path, {"spec": {"deregistered": True}})
    except ApiError as e:
        raise from_kube(e, action) from None
    forget_definition(ctx, name)
    return {}


# ---- DescribeJobDefinitions ----------------------------------------------------------------------


async def _revisions(ctx: Context, selector: str) -> list[JSON] | None:
    """ControllerRevisions of definitions, or None when the caller may not list them."""
    try:
        listed = await ctx.user.get(revisions_path(ctx.namespace), labelSelector=selector)
    except ApiError as e:
        if e.status == 403:
            return None
        raise from_kube(e, "batch:DescribeJobDefinitions") from None
    items: list[JSON] = listed.get("items") or []
    return items


def _entries(definition: Mapping[str, Any], revisions: list[JSON] | None, arns: Arns) -> list[JSON]:
    """Every revision of one definition as AWS's JobDefinition, oldest first."""
    name = definitions.aws_name(definition)
    obj_name = definition["metadata"]["name"]
    deregistered = definitions.definition_status(definition) == "INACTIVE"
    out: dict[int, JSON] = {}
    if revisions is not None:
        mine = [r for r in revisions if (r["metadata"].get("labels") or {}).get(LABEL_JOB_DEFINITION) == obj_name]
        for record in stored_records(mine, definition):
            status = "ACTIVE" if record.active and not deregistered else "INACTIVE"
            out[record.revision] = definitions.aws_definition(name, record.revision, record.spec, status, arns)
    latest = (definition.get("status") or {}).get("revision")
    if latest and int(latest) not in out:
        spec = {k: v for k, v in (definition.get("spec") or {}).items() if k != "deregistered"}
        status = definitions.definition_status(definition)
        out[int(latest)] = definitions.aws_definition(name, int(latest), spec, status, arns)
    return [out[r] for r in sorted(out)]


def _token(position: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def _position(token: str) -> tuple[str, int]:
    try:
        name, revision = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(name), int(revision)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise ClientException("nextToken: invalid") from None


async def describe_job_definitions(ctx: Context, call: Call) -> JSON:
    body = call.body
    action = "batch:DescribeJobDefinitions"
    refs = string_list(body, "jobDefinitions")
    name_filter = optional_str(body, "jobDefinitionName")
    status_filter = optional_str(body, "status")
    max_results = optional_int(body, "maxResults", low=1, high=100) or 100
    token = optional_str(body, "nextToken")
    if refs and (name_filter or status_filter):
        raise ClientException("jobDefinitions can't be used with other parameters")
    if len(refs) > 100:
        raise ClientException("jobDefinitions: at most 100")
    arns = Arns(ctx.config.region, ctx.config.account)
    wanted: dict[str, set[int] | None] = {}  # object name -> revisions (None: all)
    for ref in refs:
        _, obj, revision = definitions.reference(ref, "jobDefinitions")
        current = wanted.get(obj, set())
        wanted[obj] = None if revision is None or current is None else {*current, revision}
    if name_filter:
        wanted[definitions.reference(name_filter, "jobDefinitionName")[1]] = None
    if wanted:
        got = await asyncio.gather(*(_get(ctx.user, definitions_path(ctx.namespace, n), action) for n in wanted))
        found = [d for d in got if d]
        selector = f"{LABEL_JOB_DEFINITION} in ({','.join(sorted(wanted))})"
    else:
        try:
            listed = await ctx.user.get(definitions_path(ctx.namespace))
        except ApiError as e:
            raise from_kube(e, action) from None
        found = listed.get("items") or []
        selector = LABEL_JOB_DEFINITION
    revisions = await _revisions(ctx, selector) if found else []
    entries: list[JSON] = []
    for definition in found:
        keep = wanted.get(definition["metadata"]["name"]) if wanted else None
        for entry in _entries(definition, revisions, arns):
            if keep is not None and entry["revision"] not in keep:
                continue
            if status_filter and entry["status"] != status_filter:
                continue
            entries.append(entry)
    entries.sort(key=lambda e: (e["jobDefinitionName"], e["revision"]))
    if token:
        after = _position(token)
        entries = [e for e in entries if (e["jobDefinitionName"], e["revision"]) > after]
    chosen = entries[:max_results]
    next_token = None
    if len(entries) > len(chosen) and chosen:
        next_token = _token((chosen[-1]["jobDefinitionName"], chosen[-1]["revision"]))
    return {"jobDefinitions": chosen, "nextToken": next_token}


HANDLERS: dict[str, Handler] = {
    "RegisterJobDefinition": register_job_definition,
    "DeregisterJobDefinition": deregister_job_definition,
    "DescribeJobDefinitions": describe_job_definitions,
}
