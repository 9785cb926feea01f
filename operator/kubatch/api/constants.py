"""Names fixed by the API contract (docs `api.md`): group, version, and per kind its plural,
singular, short name and scope. Everything that builds a URL, a CRD or an RBAC rule reads them here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GROUP = "kubatch.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "kubatch"

Scope = Literal["Cluster", "Namespaced"]


@dataclass(frozen=True)
class KindInfo:
    """How one kind is named on the API server."""

    kind: str
    plural: str
    singular: str
    short_name: str
    scope: Scope

    @property
    def crd_name(self) -> str:
        """The CustomResourceDefinition's metadata.name, e.g. `batchjobs.kubatch.dev`."""
        return f"{self.plural}.{GROUP}"

    @property
    def namespaced(self) -> bool:
        return self.scope == "Namespaced"


COMPUTE_ENVIRONMENT = KindInfo("ComputeEnvironment", "computeenvironments", "computeenvironment", "ce", "Cluster")
JOB_QUEUE = KindInfo("JobQueue", "jobqueues", "jobqueue", "jq", "Cluster")
SCHEDULING_POLICY = KindInfo("SchedulingPolicy", "schedulingpolicies", "schedulingpolicy", "sp", "Cluster")
CONSUMABLE_RESOURCE = KindInfo("ConsumableResource", "consumableresources", "consumableresource", "cres", "Cluster")
SERVICE_ENVIRONMENT = KindInfo("ServiceEnvironment", "serviceenvironments", "serviceenvironment", "se", "Cluster")
JOB_DEFINITION = KindInfo("JobDefinition", "jobdefinitions", "jobdefinition", "jd", "Namespaced")
BATCH_JOB = KindInfo("BatchJob", "batchjobs", "batchjob", "bj", "Namespaced")
JOB_SCHEDULE = KindInfo("JobSchedule", "jobschedules", "jobschedule", "js", "Namespaced")

KINDS: tuple[KindInfo, ...] = (
    COMPUTE_ENVIRONMENT,
    JOB_QUEUE,
    SCHEDULING_POLICY,
    CONSUMABLE_RESOURCE,
    SERVICE_ENVIRONMENT,
    JOB_DEFINITION,
    BATCH_JOB,
    JOB_SCHEDULE,
)
KINDS_BY_NAME: dict[str, KindInfo] = {k.kind: k for k in KINDS}
