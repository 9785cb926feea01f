"""``containerProperties`` jobs: the one container (named ``main``) and its volumes.

``command`` maps to the container's ``args`` (AWS's command is Docker CMD: the image ENTRYPOINT
still runs); VCPU -> cpu request (no limit: ECS vCPUs are shares), MEMORY -> memory request =
limit, GPU -> ``nvidia.com/gpu`` request = limit, the deprecated ``vcpus``/``memory`` keys when no
resourceRequirement of that type is given; ``secrets[].valueFrom`` ``name:key`` -> secretKeyRef;
``volumes``: ``host.sourcePath`` -> hostPath, a Kubernetes volume source passed through, anything
else -> emptyDir, names made DNS-valid in volumes and mounts alike; ``user`` -> runAsUser
(/runAsGroup); ``privileged``, ``readonlyRootFilesystem`` -> securityContext;
``linuxParameters.sharedMemorySize`` -> a Memory emptyDir on /dev/shm, ``tmpfs`` -> Memory
emptyDirs. Pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.core.params import substitute_all
from kubatch.core.pods.names import GPU_RESOURCE, MAIN_CONTAINER, PodSpecError, dns_label
from kubatch.core.pods.quantities import cpu_quantity, decimal_of, memory_quantity

#: Kubernetes volume sources passed through unchanged from a containerProperties volume.
K8S_VOLUME_SOURCES: frozenset[str] = frozenset(
    {
        "hostPath", "emptyDir", "secret", "configMap", "persistentVolumeClaim", "nfs", "csi",
        "projected", "downwardAPI", "ephemeral", "iscsi", "image", "fc", "cephfs", "rbd",
    }
)  # fmt: skip


def _resources(reqs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for r in reqs:
        kind, value = r.get("type"), r.get("value")
        if value is None:
            continue
        if kind == "VCPU":
            requests["cpu"] = cpu_quantity(value)
        elif kind == "MEMORY":
            requests["memory"] = limits["memory"] = memory_quantity(value)
        elif kind == "GPU":
            gpus = int(decimal_of(value, "GPU"))
            if gpus > 0:
                requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _secret_env(secret: Mapping[str, Any]) -> dict[str, Any]:
    name = str(secret.get("name", ""))
    source = str(secret.get("valueFrom", ""))
    if source.startswith("arn:"):
        raise PodSpecError(f"secret {name}: AWS ARNs are not supported, use <secret-name>:<key>")
    secret_name, _, key = source.partition(":")
    if not secret_name:
        raise PodSpecError(f"secret {name}: valueFrom must be <secret-name>:<key>")
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key or name}}}


def _security_context(props: Mapping[str, Any]) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    user = props.get("user")
    if user is not None:
        uid, _, gid = str(user).partition(":")
        uid = "0" if uid == "root" else uid
        gid = "0" if gid == "root" else gid
        if uid.isdigit():
            ctx["runAsUser"] = int(uid)
            if gid.isdigit():
                ctx["runAsGroup"] = int(gid)
    if props.get("privileged") is not None:
        ctx["privileged"] = bool(props["privileged"])
    if props.get("readonlyRootFilesystem") is not None:
        ctx["readOnlyRootFilesystem"] = bool(props["readonlyRootFilesystem"])
    return ctx


def _volume(volume: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": dns_label(str(volume.get("name", "")))}
    native = {k: copy.deepcopy(v) for k, v in volume.items() if k in K8S_VOLUME_SOURCES}
    if native:
        out.update(native)
        return out
    source = (volume.get("host") or {}).get("sourcePath")
    if source:
        out["hostPath"] = {"path": source}
    else:
        out["emptyDir"] = {}
    return out


def container_from_props(
    props: Mapping[str, Any], parameters: Mapping[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not props.get("image"):
        raise PodSpecError("containerProperties.image is required")
    container: dict[str, Any] = {"name": MAIN_CONTAINER, "image": props["image"]}
    args = substitute_all(props.get("command"), parameters)
    if args:
        container["args"] = args
    env = [{"name": str(e["name"]), "value": str(e.get("value", ""))} for e in props.get("environment") or []]
    env += [_secret_env(s) for s in props.get("secrets") or []]
    if env:
        container["env"] = env
    resources = _resources(props.get("resourceRequirements") or [])
    if resources:
        container["resources"] = resources
    volumes = [_volume(v) for v in props.get("volumes") or []]
    mounts = [
        {
            "name": dns_label(str(m.get("sourceVolume", ""))),
            "mountPath": m["containerPath"],
            **({"readOnly": True} if m.get("readOnly") else {}),
        }
        for m in props.get("mountPoints") or []
    ]
    linux = props.get("linuxParameters") or {}
    if linux.get("sharedMemorySize"):
        volumes.append(
            {
                "name": "dshm",
                "emptyDir": {"medium": "Memory", "sizeLimit": memory_quantity(linux["sharedMemorySize"])},
            }
        )
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    for i, tmpfs in enumerate(linux.get("tmpfs") or []):
        empty: dict[str, Any] = {"medium": "Memory"}
        if tmpfs.get("size"):
            empty["sizeLimit"] = memory_quantity(tmpfs["size"])
        volumes.append({"name": f"tmpfs-{i}", "emptyDir": empty})
        mounts.append({"name": f"tmpfs-{i}", "mountPath": tmpfs["containerPath"]})
    if mounts:
        container["volumeMounts"] = mounts
    ctx = _security_context(props)
    if ctx:
        container["securityContext"] = ctx
    return container, volumes
