"""Who may make a job use what: kubatch's ``iam:PassRole``, pure (plain dicts in, uses and violations out).

kubatch's operator creates the job's pods with its own rights, so without a check anyone allowed to
create BatchJobs in a namespace could run pods there as any ServiceAccount and read any Secret. AWS
Batch requires ``iam:PassRole`` to hand a job a role; kubatch requires that the user who creates
the BatchJob (the admission request's ``userInfo``) may use, through Kubernetes RBAC (asked with a
SubjectAccessReview), everything the job's pods use beyond their own containers. Written as
``kubectl auth can-i`` would ask, any one alternative suffices:

====================================================  ==============================================
the job uses                                          its submitter needs
====================================================  ==============================================
a ServiceAccount other than ``default``               ``create pods``, or ``use serviceaccounts/<name>``
a Secret (``secrets[].valueFrom``, a secret volume,   ``get secrets/<name>``
env ``secretKeyRef``, ``envFrom``, imagePullSecrets)
a ConfigMap (a configMap volume, ``configMapKeyRef``)  ``get configmaps/<name>``
a PersistentVolumeClaim                                ``create pods``, or ``use persistentvolumeclaims/<name>``
privileged containers, hostNetwork, host paths         ``create pods`` (and the queue's and compute
(volumes or devices)                                   environments' ``allow*`` flags, as before)
a service job's workload (``serviceRequestPayload``)   ``create`` of its kind (KUBERNETES_JOB:
                                                       ``create jobs.batch``)
====================================================  ==============================================

Why these: a user who may create pods in the namespace can already run any of its ServiceAccounts
and mount any of its claims, and the pods kubatch creates pass the namespace's Pod Security
admission like theirs would; so ``create pods`` is enough for those, and ``use`` (the verb
PodSecurityPolicy used; RBAC accepts any verb) grants one account or claim by name to users who may
not create pods. What a job reads (Secrets, ConfigMaps) needs ``get`` on that object, whatever
else the user may do: a job must not read what its submitter could not read.

A service job's workload is created by the operator exactly as its payload says, pods and all:
whoever may create that kind of object in the namespace may have kubatch create it, nobody else (the
payload is not looked into, as AWS passes it through).

Where a use comes from: the job definition (the revision the job resolves to: every node range of
a multi-node definition; ``containerProperties``; ``podProperties``) and the job's own overrides
(``podOverrides``, ``nodeOverrides.nodePropertyOverrides[].podOverrides``: env ``secretKeyRef`` /
``configMapKeyRef``). A use named by the definition
is counted even when an override replaces it (conservative). The namespace's ``default``
ServiceAccount (and an unset ``serviceAccountName``, which the operator may map to an account its
admin chose) needs nothing: any submitter's job may run as it.

JobDefinitions are checked too, on CREATE (everything) and UPDATE (what the old spec did not use
yet), as AWS checks ``iam:PassRole`` at RegisterJobDefinition; but a definition is only a
template: the job check is the one that counts, since the job's submitter is the one passing the
account.

JobSchedules: the operator submits their runs, so the webhook would see the operator (which may
create pods, and may not read Secrets) as the submitter. Instead a schedule's author is checked for
its ``jobTemplate`` when the schedule is created or changed (``schedule_uses``: what the template
would use through the definition's revision of that moment and its overrides), and a BatchJob
created by the operator itself as a run of a schedule (``scheduled_by``) is not checked again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubatch.core.admission import Violation, World, resolve_definition

JSON = Mapping[str, Any]
UseKind = Literal[
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "privileged",
    "hostNetwork",
    "hostPath",
    "Workload",
]

DEFAULT_SERVICE_ACCOUNT = "default"


@dataclass(frozen=True)
class Permission:
    """One RBAC permission in a namespace (``name`` empty: any object of the resource)."""

    verb: str
    resource: str
    name: str = ""
    group: str = ""

    def __str__(self) -> str:
        """As ``kubectl auth can-i`` takes it: ``create pods``, ``get secrets/db``."""
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{self.verb} {resource}/{self.name}" if self.name else f"{self.verb} {resource}"


CREATE_PODS = Permission("create", "pods")

_WHAT: dict[UseKind, str] = {
    "ServiceAccount": 'use ServiceAccount "{}"',
    "Secret": 'read Secret "{}"',
    "ConfigMap": 'read ConfigMap "{}"',
    "PersistentVolumeClaim": 'mount PersistentVolumeClaim "{}"',
    "privileged": "run privileged containers",
    "hostNetwork": "use the node's network (hostNetwork)",
    "hostPath": "mount paths or devices of the node (hostPath)",
    "Workload": "create {}",
}


@dataclass(frozen=True)
class Use:
    """Something a job's pods use beyond their own containers: where it is named (a path relative to
    the spec that names it), what it is, and the permissions any one of which allows it."""

    path: str
    kind: UseKind
    name: str = ""

    @property
    def what(self) -> str:
        return _WHAT[self.kind].format(self.name)

    @property
    def any_of(self) -> tuple[Permission, ...]:
        if self.kind == "ServiceAccount":
            return (CREATE_PODS, Permission("use", "serviceaccounts", self.name))
        if self.kind == "PersistentVolumeClaim":
            return (CREATE_PODS, Permission("use", "persistentvolumeclaims", self.name))
        if self.kind == "Secret":
            return (Permission("get", "secrets", self.name),)
        if self.kind == "ConfigMap":
            return (Permission("get", "configmaps", self.name),)
        if self.kind == "Workload":  # name: `<plural>.<group>`, e.g. jobs.batch
            resource, _, group = self.name.partition(".")
            return (Permission("create", resource, group=group),)
        return (CREATE_PODS,)

    @property
    def key(self) -> tuple[str, str]:
        """What is used, wherever it is named."""
        return self.kind, self.name


@dataclass(frozen=True)
class JobUse:
    """A use of a BatchJob: the job's field it comes through and, for uses of its definition, the
    definition's resolved ``name:revision``."""

    field: str
    use: Use
    definition: str = ""


# ---- small helpers ----------------------------------------------------------------------------------
def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


# ---- scanning ---------------------------------------------------------------------------------------
def _service_account(props: JSON, prefix: str) -> list[Use]:
    name = _s(props.get("serviceAccountName"))
    if not name or name == DEFAULT_SERVICE_ACCOUNT:
        return []
    return [Use(_join(prefix, "serviceAccountName"), "ServiceAccount", name)]


def _volume_uses(volume: JSON, path: str) -> list[Use]:
    out: list[Use] = []
    secret = _s(_d(volume.get("secret")).get("secretName"))
    if secret:
        out.append(Use(f"{path}.secret.secretName", "Secret", secret))
    config = _s(_d(volume.get("configMap")).get("name"))
    if config:
        out.append(Use(f"{path}.configMap.name", "ConfigMap", config))
    claim = _s(_d(volume.get("persistentVolumeClaim")).get("claimName"))
    if claim:
        out.append(Use(f"{path}.persistentVolumeClaim.claimName", "PersistentVolumeClaim", claim))
    if "hostPath" in volume:
        out.append(Use(f"{path}.hostPath", "hostPath"))
    if _s(_d(volume.get("host")).get("sourcePath")):
        out.append(Use(f"{path}.host.sourcePath", "hostPath"))
    return out


def _env_uses(container: JSON, path: str) -> list[Use]:
    """env ``secretKeyRef`` / ``configMapKeyRef`` and ``envFrom`` of a pod container (or an override)."""
    out: list[Use] = []
    for i, raw in enumerate(_l(container.get("env"))):
        source = _d(_d(raw).get("valueFrom"))
        secret = _s(_d(source.get("secretKeyRef")).get("name"))
        if secret:
            out.append(Use(f"{path}.env[{i}].valueFrom.secretKeyRef.name", "Secret", secret))
        config = _s(_d(source.get("configMapKeyRef")).get("name"))
        if config:
            out.append(Use(f"{path}.env[{i}].valueFrom.configMapKeyRef.name", "ConfigMap", config))
    for i, raw in enumerate(_l(container.get("envFrom"))):
        entry = _d(raw)
        secret = _s(_d(entry.get("secretRef")).get("name"))
        if secret:
            out.append(Use(f"{path}.envFrom[{i}].secretRef.name", "Secret", secret))
        config = _s(_d(entry.get("configMapRef")).get("name"))
        if config:
            out.append(Use(f"{path}.envFrom[{i}].configMapRef.name", "ConfigMap", config))
    return out


def container_properties_uses(props: JSON, prefix: str) -> list[Use]:
    """Uses of an AWS-shaped container (``containerProperties``, a node range's ``container``)."""
    out = _service_account(props, prefix)
    for i, raw in enumerate(_l(props.get("secrets"))):
        source = _s(_d(raw).get("valueFrom"))
        name = source.partition(":")[0]
        if name and not source.startswith("arn:"):  # an ARN fails the pod build; it names no Secret
            out.append(Use(_join(prefix, f"secrets[{i}].valueFrom"), "Secret", name))
    for i, raw in enumerate(_l(props.get("volumes"))):
        out += _volume_uses(_d(raw), _join(prefix, f"volumes[{i}]"))
    if props.get("privileged") is True:
        out.append(Use(_join(prefix, "privileged"), "privileged"))
    if _l(_d(props.get("linuxParameters")).get("devices")):
        out.append(Use(_join(prefix, "linuxParameters.devices"), "hostPath"))
    return out


def pod_properties_uses(template: JSON, prefix: str) -> list[Use]:
    """Uses of a Kubernetes-shaped pod template (``podProperties``)."""
    out = _service_account(template, prefix)
    for i, raw in enumerate(_l(template.get("volumes"))):
        out += _volume_uses(_d(raw), _join(prefix, f"volumes[{i}]"))
    for key in ("initContainers", "containers"):
        for j, raw in enumerate(_l(template.get(key))):
            container = _d(raw)
            path = _join(prefix, f"{key}[{j}]")
            out += _env_uses(container, path)
            if _d(container.get("securityContext")).get("privileged") is True:
                out.append(Use(f"{path}.securityContext.privileged", "privileged"))
    for i, raw in enumerate(_l(template.get("imagePullSecrets"))):
        name = _s(_d(raw).get("name"))
        if name:
            out.append(Use(_join(prefix, f"imagePullSecrets[{i}].name"), "Secret", name))
    if template.get("hostNetwork") is True:
        out.append(Use(_join(prefix, "hostNetwork"), "hostNetwork"))
    return out


def _holder_uses(holder: JSON, prefix: str, container_key: str) -> list[Use]:
    out: list[Use] = []
    container = holder.get(container_key)
    if isinstance(container, Mapping):
        out += container_properties_uses(container, _join(prefix, container_key))
    template = holder.get("podProperties")
    if isinstance(template, Mapping):
        out += pod_properties_uses(template, _join(prefix, "podProperties"))
    return out


def definition_uses(spec: JSON) -> list[Use]:
    """Everything a JobDefinition spec uses, with paths relative to the spec; every node range of a
    multi-node definition counts."""
    out = _holder_uses(spec, "", "containerProperties")
    for i, raw in enumerate(_l(_d(spec.get("nodeProperties")).get("nodeRangeProperties"))):
        out += _holder_uses(_d(raw), f"nodeProperties.nodeRangeProperties[{i}]", "container")
    return out


def _pod_override_uses(overrides: JSON, prefix: str) -> list[Use]:
    out: list[Use] = []
    for key in ("initContainers", "containers"):
        for j, raw in enumerate(_l(overrides.get(key))):
            out += _env_uses(_d(raw), f"{prefix}.{key}[{j}]")
    out += _service_account(overrides, prefix)  # no override sets one today; if one ever does, it counts
    return out


def override_uses(job_spec: JSON) -> list[Use]:
    """What a BatchJob's own overrides add, with paths relative to the job's spec."""
    out: list[Use] = []
    overrides = job_spec.get("podOverrides")
    if isinstance(overrides, Mapping):
        out += _pod_override_uses(overrides, "podOverrides")
    container = job_spec.get("containerOverrides")
    if isinstance(container, Mapping):
        out += _service_account(container, "containerOverrides")
    node = _d(job_spec.get("nodeOverrides"))
    for i, raw in enumerate(_l(node.get("nodePropertyOverrides"))):
        entry = _d(raw)
        prefix = f"nodeOverrides.nodePropertyOverrides[{i}]"
        over = entry.get("podOverrides")
        if isinstance(over, Mapping):
            out += _pod_override_uses(over, f"{prefix}.podOverrides")
        container = entry.get("containerOverrides")
        if isinstance(container, Mapping):
            out += _service_account(container, f"{prefix}.containerOverrides")
    return out


def batch_job_uses(job: JSON, world: World) -> list[JobUse]:
    """Everything a new BatchJob uses: its resolved definition revision's uses (through
    ``spec.jobDefinition``) and its overrides' (through their own fields). A definition that does
    not resolve gives none (the job is refused, or failed by the controller, for that)."""
    spec = _d(job.get("spec"))
    out: list[JobUse] = []
    if spec.get("serviceJobType"):
        from kubatch.core.service_jobs import workload_type

        wtype = workload_type(_s(spec.get("serviceJobType")))
        if wtype is not None:
            group = wtype.api_version.rpartition("/")[0]
            name = f"{wtype.plural}.{group}" if group else wtype.plural
            out.append(JobUse("spec.serviceRequestPayload", Use("serviceRequestPayload", "Workload", name)))
        return out
    resolved, record, _ = resolve_definition(spec.get("jobDefinition"), world)
    if record is not None:
        out += [JobUse("spec.jobDefinition", use, resolved) for use in definition_uses(record.spec)]
    out += [JobUse(f"spec.{use.path}", use) for use in override_uses(spec)]
    return out


def schedule_uses(schedule: JSON, world: World, old: JSON | None = None) -> list[JobUse]:
    """What the BatchJobs of a JobSchedule would use (its ``jobTemplate.spec`` judged as a job's,
    fields under ``spec.jobTemplate``); on UPDATE only what the old template did not use yet."""

    def uses(obj: JSON | None) -> list[JobUse]:
        template = _d(_d(_d(obj).get("spec")).get("jobTemplate"))
        job = {"metadata": _d(_d(obj).get("metadata")), "spec": _d(template.get("spec"))}
        return [
            JobUse("spec.jobTemplate." + item.field, item.use, item.definition) for item in batch_job_uses(job, world)
        ]

    found = uses(schedule)
    if old is None:
        return found
    before = {item.use.key for item in uses(old)}
    return [item for item in found if item.use.key not in before]


def scheduled_by(job: JSON) -> bool:
    """Whether a BatchJob names a JobSchedule as its controller (a run the operator submits)."""
    refs = _l(_d(job.get("metadata")).get("ownerReferences"))
    return any(_d(r).get("kind") == "JobSchedule" and _d(r).get("controller") is True for r in refs)


def new_definition_uses(spec: JSON, old_spec: JSON | None) -> list[Use]:
    """A JobDefinition's uses to check: all on CREATE; on UPDATE those the old spec did not have."""
    uses = definition_uses(spec)
    if old_spec is None:
        return uses
    before = {u.key for u in definition_uses(old_spec)}
    return [u for u in uses if u.key not in before]


# ---- deciding ---------------------------------------------------------------------------------------
def first_round(uses: Iterable[Use]) -> set[Permission]:
    """The permissions to ask about first: each use's first alternative (``create pods`` is shared)."""
    return {u.any_of[0] for u in uses}


def still_open(uses: Iterable[Use], answers: Mapping[Permission, bool]) -> set[Permission]:
    """The alternatives to ask about next: for each use no known answer allows, those not asked yet."""
    out: set[Permission] = set()
    for use in uses:
        if any(answers.get(p) for p in use.any_of):
            continue
        out |= {p for p in use.any_of if p not in answers}
    return out


def allowed(use: Use, answers: Mapping[Permission, bool]) -> bool:
    return any(answers.get(p) for p in use.any_of)


def describe_user(userinfo: JSON) -> str:
    return _s(userinfo.get("username")) or "(anonymous)"


def _needs(use: Use) -> str:
    return "needs " + ", or ".join(str(p) for p in use.any_of)


def job_violations(
    uses: Iterable[JobUse], answers: Mapping[Permission, bool], user: str, namespace: str
) -> list[Violation]:
    """One violation per use that none of the user's permissions allows (a thing used in several
    places is reported once per field)."""
    out: list[Violation] = []
    seen: set[tuple[str, tuple[str, str]]] = set()
    for item in uses:
        use = item.use
        if allowed(use, answers) or (item.field, use.key) in seen:
            continue
        seen.add((item.field, use.key))
        where = f'job definition "{item.definition}", {use.path}; ' if item.definition else ""
        out.append(
            Violation(
                item.field,
                f'user "{user}" may not {use.what} in namespace "{namespace}" ({where}{_needs(use)})',
            )
        )
    return out


def definition_violations(
    uses: Iterable[Use], answers: Mapping[Permission, bool], user: str, namespace: str
) -> list[Violation]:
    """One violation per JobDefinition use that none of the user's permissions allows."""
    return [
        Violation(f"spec.{use.path}", f'user "{user}" may not {use.what} in namespace "{namespace}" ({_needs(use)})')
        for use in uses
        if not allowed(use, answers)
    ]
