"""CreateComputeEnvironment, UpdateComputeEnvironment and DeleteComputeEnvironment against the API
server, as the caller (``environments`` translates the requests).

Compute environments are cluster-scoped: the key's identity needs cluster-wide rights on
``computeenvironments`` (the chart's ``kubatch-admin``), else AccessDeniedException. Create is one
write; Update one merge patch of the fields the request names (kubatch's own fields, such as the
provisioner or the node selector, stay); kubatch's rules (the CRD's: MANAGED needs computeResources,
desiredvCpus cannot be lowered, the provisioner is immutable, ...) come back as ClientException.

Delete follows AWS's rule: the environment must be DISABLED and no job queue may name it (read as
the caller; an identity that may not list job queues skips that check, and kubatch's finalizer
then waits for the queues to let go). Jobs still running on it finish before it goes (it is
DELETING meanwhile: kubatch's finalizer), where AWS terminates its instances.
"""

from __future__ import annotations

from kubatch.awsapi import environments
from kubatch.awsapi.arns import COMPUTE_ENVIRONMENT, JOB_QUEUE
from kubatch.awsapi.errors import ClientException, from_kube
from kubatch.awsapi.protocol import JSON, Call, required_str
from kubatch.awsapi.resource_ops import arns, delete_object, must_get, path, write
from kubatch.awsapi.server import Context, Handler
from kubatch.cluster.client import ApiError, Kube
from kubatch.core.deletion import attached_queues


def _answer(ctx: Context, name: str) -> JSON:
    return {"computeEnvironmentName": name, "computeEnvironmentArn": arns(ctx).compute_environment(name)}


async def create_compute_environment(ctx: Context, call: Call) -> JSON:
    manifest = environments.environment_manifest(call.body, ctx.config.environments)
    created = await write(ctx.user, "POST", path(COMPUTE_ENVIRONMENT), manifest, "batch:CreateComputeEnvironment")
    return _answer(ctx, str(created["metadata"]["name"]))


async def update_compute_environment(ctx: Context, call: Call) -> JSON:
    action = "batch:UpdateComputeEnvironment"
    value = required_str(call.body, "computeEnvironment")
    environment = await must_get(ctx.user, COMPUTE_ENVIRONMENT, value, "computeEnvironment", action)
    name = str(environment["metadata"]["name"])
    changes = environments.environment_changes(call.body)
    if changes:
        await write(
            ctx.user, "PATCH", path(COMPUTE_ENVIRONMENT, name), {"spec": changes}, action,
            "application/merge-patch+json",
        )  # fmt: skip
    return _answer(ctx, name)


async def _queues_using(kube: Kube, name: str, action: str) -> list[str]:
    """The job queues that name the environment; [] when the caller may not list job queues."""
    try:
        listed = await kube.get(path(JOB_QUEUE))
    except ApiError as e:
        if e.status == 403:
            return []
        raise from_kube(e, action) from None
    queues = {str(q["metadata"]["name"]): q for q in listed.get("items") or []}
    return attached_queues(name, queues)


async def delete_compute_environment(ctx: Context, call: Call) -> JSON:
    action = "batch:DeleteComputeEnvironment"
    value = required_str(call.body, "computeEnvironment")
    environment = await must_get(ctx.user, COMPUTE_ENVIRONMENT, value, "computeEnvironment", action)
    name = str(environment["metadata"]["name"])
    refusal = environments.deletion_refusal(environment, await _queues_using(ctx.user, name, action))
    if refusal is not None:
        raise ClientException(refusal)
    await delete_object(ctx.user, path(COMPUTE_ENVIRONMENT, name), action)
    return {}


HANDLERS: dict[str, Handler] = {
    "CreateComputeEnvironment": create_compute_environment,
    "UpdateComputeEnvironment": update_compute_environment,
    "DeleteComputeEnvironment": delete_compute_environment,
}
