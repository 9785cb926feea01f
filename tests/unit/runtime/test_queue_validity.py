"""A job queue's status (kubatch.runtime.queues.queue_validity): INVALID when its compute
environments are not all of one architecture, counting an UNMANAGED pool by its nodes."""

from __future__ import annotations

from typing import Any

from kubatch.runtime.queues import queue_validity


def queue(*envs: str) -> dict[str, Any]:
    order = [{"order": i + 1, "computeEnvironment": e} for i, e in enumerate(envs)]
    return {"metadata": {"name": "q"}, "spec": {"priority": 1, "computeEnvironmentOrder": order}}


def managed(*types: str, status: str = "VALID") -> dict[str, Any]:
    return {
        "spec": {"type": "MANAGED", "computeResources": {"maxvCpus": 8, "instanceTypes": list(types)}},
        "status": {"status": status},
    }


def node(name: str, pool: str, arch: str) -> dict[str, Any]:
    labels = {"kubatch.dev/compute-environment": pool, "kubernetes.io/arch": arch}
    return {"metadata": {"name": name, "labels": labels}}


def test_mixed_architectures_make_the_queue_invalid() -> None:
    envs = {
        "x86": managed("m7i"),
        "arm": managed("m7g"),
        "pool": {"spec": {"type": "UNMANAGED", "nodeSelector": {"team": "a"}}, "status": {"status": "VALID"}},
    }
    assert queue_validity(queue("x86", "pool"), envs) == ("VALID", "")
    status, reason = queue_validity(queue("x86", "arm"), envs)
    assert status == "INVALID"
    assert reason.startswith("CLIENT_ERROR - compute environments of different architectures: ")
    assert "x86 (x86_64), arm (arm64)" in reason
    nodes = {"n1": node("n1", "pool", "arm64"), "n2": node("n2", "pool", "arm64")}
    assert queue_validity(queue("x86", "pool"), envs, nodes)[0] == "INVALID"  # the pool's nodes are arm64
    assert queue_validity(queue("arm", "pool"), envs, nodes) == ("VALID", "")
    # A missing or INVALID environment is reported first, as before.
    assert queue_validity(queue("x86", "gone"), envs)[1] == "CLIENT_ERROR - compute environment(s) not found: gone"
