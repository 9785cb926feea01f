"""A small test DSL over kubectl: compute environments on kwok nodes, queues, definitions, jobs, waits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.integration.helpers import Kubectl, NodeFactory, delete_cluster_objects

GROUP = "kubatch.dev/v1alpha1"
TERMINAL = ("SUCCEEDED", "FAILED")


class Batch:
    """Creates kubatch objects for one test (unique names) and removes the cluster-scoped ones after."""

    def __init__(self, kubectl: Kubectl, kget: Callable[..., Any], namespace: str, make_node: NodeFactory) -> None:
        self.kubectl = kubectl
        self.kget = kget
        self.ns = namespace
        self.make_node = make_node
        self.tag = uuid.uuid4().hex[:6]
        self.cluster_objects: list[tuple[str, str]] = []

    def name(self, base: str) -> str:
        return f"{base}-{self.tag}"

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = self.kubectl("apply", "-o", "json", "-f", "-", input=json.dumps(obj))
        return dict(json.loads(out.stdout))

    def create(self, obj: dict[str, Any], *, check: bool = True) -> Any:
        return self.kubectl("create", "-f", "-", input=json.dumps(obj), check=check)

    # ---- infrastructure --------------------------------------------------------------------------
    def environment(
        self,
        *,
        nodes: int = 1,
        cpu: int = 4,
        memory: str = "16Gi",
        gpus: int = 0,
        name: str | None = None,
        unmanaged_vcpus: int | None = None,
        state: str = "ENABLED",
    ) -> str:
        ce = name or self.name("ce")
        selector = {"kubatch.dev/test-pool": ce}
        for _ in range(nodes):
            self.make_node(cpu=cpu, memory=memory, gpus=gpus, labels=selector)
        spec: dict[str, Any] = {"type": "UNMANAGED", "state": state, "nodeSelector": selector}
        if unmanaged_vcpus is not None:
            spec["unmanagedvCpus"] = unmanaged_vcpus
        self.apply({"apiVersion": GROUP, "kind": "ComputeEnvironment", "metadata": {"name": ce}, "spec": spec})
        self.cluster_objects.append(("computeenvironment", ce))
        self.wait_for(lambda: self._pool_ready(ce, nodes), f"pool of {ce} ready")
        return ce

    def _pool_ready(self, ce: str, nodes: int) -> bool:
        obj = self.kget("computeenvironment", ce)
        if (obj.get("status") or {}).get("status") != "VALID":
            return False
        labelled = self.kget("nodes", "-l", f"kubatch.dev/compute-environment={ce}")
        return len(labelled["items"]) >= nodes

    def queue(
        self,
        envs: list[str],
        *,
        priority: int = 1,
        name: str | None = None,
        policy: str | None = None,
        time_limits: list[dict[str, Any]] | None = None,
        state: str = "ENABLED",
    ) -> str:
        q = name or self.name("q")
        spec: dict[str, Any] = {
            "priority": priority,
            "state": state,
            "computeEnvironmentOrder": [{"order": i + 1, "computeEnvironment": e} for i, e in enumerate(envs)],
        }
        if policy:
            spec["schedulingPolicy"] = policy
        if time_limits:
            spec["jobStateTimeLimitActions"] = time_limits
        self.apply({"apiVersion": GROUP, "kind": "JobQueue", "metadata": {"name": q}, "spec": spec})
        self.cluster_objects.append(("jobqueue", q))
        return q

    def cluster_object(self, kind: str, name: str, spec: dict[str, Any]) -> str:
        self.apply({"apiVersion": GROUP, "kind": kind, "metadata": {"name": name}, "spec": spec})
        self.cluster_objects.append((kind.lower(), name))
        return name

    def definition(self, name: str, spec: dict[str, Any]) -> str:
        self.apply(
            {
                "apiVersion": GROUP,
                "kind": "JobDefinition",
                "metadata": {"name": name, "namespace": self.ns},
                "spec": spec,
            }
        )
        self.wait_for(
            lambda: (self.kget("jobdefinition", name, "-n", self.ns).get("status") or {}).get("revision"),
            f"job definition {name} registered",
        )
        return name

    def container_definition(
        self,
        name: str,
        *,
        vcpus: str = "1",
        memory: str = "256",
        command: list[str] | None = None,
        gpus: str | None = None,
        **extra: Any,
    ) -> str:
        requirements = [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": memory}]
        if gpus:
            requirements.append({"type": "GPU", "value": gpus})
        spec: dict[str, Any] = {
            "type": "container",
            "containerProperties": {
                "image": "busybox:1.36",
                "command": command or ["sh", "-c", "echo hello"],
                "resourceRequirements": requirements,
            },
            **extra,
        }
        return self.definition(name, spec)

    def job(
        self,
        name: str,
        queue: str,
        definition: str,
        *,
        duration: str = "1s",
        exit_code: int | None = None,
        annotations: dict[str, str] | None = None,
        **spec: Any,
    ) -> str:
        ann = {"sim.kubatch.dev/duration": duration, **(annotations or {})}
        if exit_code is not None:
            ann["sim.kubatch.dev/exit-code"] = str(exit_code)
        body = {"jobQueue": queue, "jobDefinition": definition, "podMetadata": {"annotations": ann}, **spec}
        self.apply(
            {"apiVersion": GROUP, "kind": "BatchJob", "metadata": {"name": name, "namespace": self.ns}, "spec": body}
        )
        return name

    # ---- observation ------------------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any]:
        return dict(self.kget("batchjob", name, "-n", self.ns))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def wait_for(self, cond: Callable[[], Any], what: str, timeout: float = 90, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    def wait_status(self, name: str, *states: str, timeout: float = 90) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status(name)
            return st if st.get("status") in states else None

        try:
            return dict(self.wait_for(check, f"job {name} in {states}", timeout))
        except AssertionError as e:
            raise AssertionError(f"{e}; last status: {json.dumps(self.status(name))}") from None

    def wait_done(self, name: str, timeout: float = 90) -> dict[str, Any]:
        return self.wait_status(name, *TERMINAL, timeout=timeout)

    def pods(self, job: str) -> list[dict[str, Any]]:
        return list(self.kget("pods", "-n", self.ns, "-l", f"kubatch.dev/job-name={job}")["items"])

    def events(self, job: str) -> list[dict[str, Any]]:
        out = self.kget("events", "-n", self.ns, "--field-selector", f"involvedObject.name={job}")
        return sorted(out["items"], key=lambda e: e.get("eventTime") or e.get("lastTimestamp") or "")

    def cleanup(self) -> None:
        delete_cluster_objects(self.kubectl, self.cluster_objects)
