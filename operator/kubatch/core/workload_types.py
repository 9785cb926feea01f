"""Service workload types declared by configuration (pure, no I/O).

A service job's workload is built in for ``KUBERNETES_JOB`` (a ``batch/v1`` Job). Further types
(a custom resource with a ``suspend`` field, run by its own controller) are declared by the operator's
configuration: a YAML (or JSON) list read at start from the file named by the environment variable
``KUBATCH_SERVICE_WORKLOAD_TYPES`` (the Helm value ``serviceWorkloadTypes``, rendered into a
ConfigMap). Each entry::

    - name: WIDGET                          # the serviceEnvironmentType / serviceJobType value
      apiVersion: test.kubatch.dev/v1       # what kubatch creates from a job's payload
      kind: Widget
      plural: widgets                       # the resource's plural (the REST path)
      service: Widget                       # optional: "Received status from <service>: ..." (kind)
      suspendPath: spec.suspend             # optional (spec.suspend): a boolean kubatch sets false
      timeoutPath: spec.activeDeadlineSeconds   # optional: timeoutConfig.attemptDurationSeconds
      podTemplates:                         # optional ([{templatePath: spec.template}])
        - templatePath: spec.template       # the pod template (labels; instance-type unit)
          replicasPath: spec.replicas       # optional: its pod count (else `replicas`, default 1)
      succeeded: {conditions: [Complete]}   # required: when the workload has succeeded
      failed: {conditions: [Failed]}        # required: when it has failed
      running: {path: status.ready}         # optional: when its pods run (RUNNING)
      starting: {path: status.active}       # optional: when its pods are starting (STARTING)
      startedAtPath: status.startTime       # optional: the attempt's startedAt

A *status matcher* (succeeded, failed, running, starting) is either ``{conditions: [T, ...]}``: a
condition of one of these types in ``status.conditions`` with status "True" (its reason and message
become the attempt's statusReason, its lastTransitionTime stoppedAt), or ``{path: P, values: [...]}``:
the field at path P equals one of the values (without ``values``: any value but absent, null, false,
0 and ""), optionally with ``messagePath`` (the statusReason is ``<value>: <message>``).

A path is dotted field names, with a number indexing a list (``spec.replicaSpecs.0.template``).
The instances a workload holds are the sum of its templates' pod counts. The configuration is
checked at start: :func:`parse_workload_types` raises :class:`WorkloadTypeConfigError` naming the
entry and field at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kubatch.core.service_jobs import (
    FAILED,
    JSON,
    RUNNING,
    SCHEDULED,
    STARTING,
    SUCCEEDED,
    WORKLOAD_TYPES,
    Observation,
    PayloadError,
    WorkloadType,
)

#: The environment variable naming the configuration file.
ENV_VAR = "KUBATCH_SERVICE_WORKLOAD_TYPES"
#: The types kubatch builds in (configuration cannot redefine them).
BUILT_IN = frozenset(WORKLOAD_TYPES)

_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_PLURAL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_API_VERSION = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$")
_KEYS = frozenset(
    {
        "name",
        "apiVersion",
        "kind",
        "plural",
        "service",
        "suspendPath",
        "timeoutPath",
        "podTemplates",
        "succeeded",
        "failed",
        "running",
        "starting",
        "startedAtPath",
    }
)


class WorkloadTypeConfigError(ValueError):
    """The workload type configuration cannot be used (the message says where and why)."""


Path = tuple[str | int, ...]


def parse_path(text: Any, where: str) -> Path:
    """A dotted path (``spec.template``; a number indexes a list) as its segments."""
    if not isinstance(text, str) or not text:
        raise WorkloadTypeConfigError(f"{where}: must be a dotted field path such as spec.template")
    out: list[str | int] = []
    for part in text.split("."):
        if not part:
            raise WorkloadTypeConfigError(f"{where}: {text!r} has an empty segment")
        out.append(int(part) if part.isdigit() else part)
    if not isinstance(out[0], str):
        raise WorkloadTypeConfigError(f"{where}: {text!r} must start with a field name")
    return tuple(out)


def get_path(obj: Any, path: Path) -> Any:
    """The value at ``path`` in ``obj``, or None when any step is missing."""
    cur = obj
    for part in path:
        if isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                return None
            cur = cur[part]
        else:
            if not isinstance(cur, Mapping):
                return None
            cur = cur.get(part)
    return cur


def set_path(obj: dict[str, Any], path: Path, value: Any) -> None:
    """Set ``path`` in ``obj`` to ``value``, making the objects on the way (``PayloadError`` when the
    payload has something else there)."""
    cur: Any = obj
    for i, part in enumerate(path[:-1]):
        if isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                raise PayloadError(f"{_dotted(path[: i + 1])} does not exist")
            cur = cur[part]
            continue
        if not isinstance(cur, dict):
            raise PayloadError(f"{_dotted(path[: i + 1])} must be in an object")
        cur = cur.setdefault(part, {})
    last = path[-1]
    if isinstance(last, int) or not isinstance(cur, dict):
        raise PayloadError(f"{_dotted(path)} must be a field of an object")
    cur[last] = value


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


@dataclass(frozen=True)
class Matcher:
    """One status matcher (module docstring)."""

    conditions: tuple[str, ...] = ()
    path: Path | None = None
    values: tuple[Any, ...] | None = None
    message_path: Path | None = None

    def match(self, workload: JSON) -> tuple[str, str | None] | None:
        """None, or (reason, time) when the workload is in this state."""
        if self.conditions:
            for c in (workload.get("status") or {}).get("conditions") or []:
                if isinstance(c, Mapping) and c.get("type") in self.conditions and c.get("status") == "True":
                    reason = str(c.get("reason") or c.get("type"))
                    message = str(c.get("message") or "").strip()
                    return (f"{reason}: {message}" if message else reason), c.get("lastTransitionTime")
            return None
        assert self.path is not None
        value = get_path(workload, self.path)
        if self.values is None:
            if value is None or value is False or value == 0 or value == "":
                return None
        elif value not in self.values:
            return None
        reason = f"{_dotted(self.path)} is {value}" if not isinstance(value, str) else value
        said = get_path(workload, self.message_path) if self.message_path else None
        if said:
            reason = f"{reason}: {str(said).strip()}"
        return reason, None


def _matcher(raw: Any, where: str) -> Matcher:
    if not isinstance(raw, Mapping):
        raise WorkloadTypeConfigError(f"{where}: must be {{conditions: [...]}} or {{path: ..., values: [...]}}")
    unknown = set(raw) - {"conditions", "path", "values", "messagePath"}
    if unknown:
        raise WorkloadTypeConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if ("conditions" in raw) == ("path" in raw):
        raise WorkloadTypeConfigError(f"{where}: give exactly one of conditions and path")
    if "conditions" in raw:
        conds = raw["conditions"]
        if not isinstance(conds, list) or not conds or not all(isinstance(c, str) and c for c in conds):
            raise WorkloadTypeConfigError(f"{where}.conditions: must be a non-empty list of condition types")
        if "values" in raw or "messagePath" in raw:
            raise WorkloadTypeConfigError(f"{where}: values and messagePath go with path, not conditions")
        return Matcher(conditions=tuple(conds))
    values = raw.get("values")
    if values is not None and (not isinstance(values, list) or not values):
        raise WorkloadTypeConfigError(f"{where}.values: must be a non-empty list (or left out: any value)")
    message = parse_path(raw["messagePath"], f"{where}.messagePath") if "messagePath" in raw else None
    return Matcher(
        path=parse_path(raw["path"], f"{where}.path"),
        values=tuple(values) if values is not None else None,
        message_path=message,
    )


@dataclass(frozen=True)
class PodTemplate:
    template: Path
    replicas_path: Path | None = None
    replicas: int = 1


@dataclass(frozen=True)
class DeclaredType:
    """What one configuration entry says, read by the functions of its :class:`WorkloadType`."""

    name: str
    suspend: Path
    timeout: Path | None
    templates: tuple[PodTemplate, ...]
    succeeded: Matcher
    failed: Matcher
    running: Matcher | None
    starting: Matcher | None
    started_at: Path | None

    def instances(self, workload: JSON) -> int:
        total = 0
        for t in self.templates:
            count: Any = get_path(workload, t.replicas_path) if t.replicas_path else None
            if count is None:
                count = t.replicas
            if isinstance(count, bool) or not isinstance(count, (int, float, str)):
                raise ValueError(f"{self.name}: replicas must be a number, not {count!r}")
            total += max(0, int(count))
        return total

    def observe(self, workload: JSON) -> Observation:
        value = get_path(workload, self.started_at) if self.started_at else None
        started = str(value) if value else None
        hit = self.succeeded.match(workload)
        if hit is not None:
            return Observation(SUCCEEDED, hit[0], started, hit[1])
        hit = self.failed.match(workload)
        if hit is not None:
            return Observation(FAILED, hit[0], started, hit[1])
        if self.running is not None and self.running.match(workload) is not None:
            return Observation(RUNNING, started_at=started)
        if self.starting is not None and self.starting.match(workload) is not None:
            return Observation(STARTING, started_at=started)
        return Observation(SCHEDULED, started_at=started)

    def prepare(self, workload: dict[str, Any], timeout: int | None) -> None:
        set_path(workload, self.suspend, False)
        if timeout is not None and self.timeout is not None:
            own = get_path(workload, self.timeout)
            set_path(workload, self.timeout, timeout if not isinstance(own, int) else min(own, timeout))

    def suspended(self, workload: JSON) -> bool:
        return get_path(workload, self.suspend) is True

    def pod_templates(self, workload: JSON) -> list[Any]:
        return [get_path(workload, t.template) for t in self.templates]


def _str(raw: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str], hint: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not pattern.match(value):
        raise WorkloadTypeConfigError(f"{where}.{key}: {hint} (got {value!r})")
    return value


def _templates(raw: Any, where: str) -> tuple[PodTemplate, ...]:
    if raw is None:
        return (PodTemplate(("spec", "template")),)
    if not isinstance(raw, list) or not raw:
        raise WorkloadTypeConfigError(f"{where}: must be a non-empty list of {{templatePath, replicasPath}}")
    out = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise WorkloadTypeConfigError(f"{at}: must be an object with templatePath")
        unknown = set(entry) - {"templatePath", "replicasPath", "replicas"}
        if unknown:
            raise WorkloadTypeConfigError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
        replicas = entry.get("replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise WorkloadTypeConfigError(f"{at}.replicas: must be a whole number >= 0")
        out.append(
            PodTemplate(
                parse_path(entry.get("templatePath"), f"{at}.templatePath"),
                parse_path(entry["replicasPath"], f"{at}.replicasPath") if "replicasPath" in entry else None,
                replicas,
            )
        )
    return tuple(out)


def declared_type(raw: Any, where: str) -> WorkloadType:
    """One configuration entry as a :class:`WorkloadType` (``WorkloadTypeConfigError`` when it cannot be)."""
    if not isinstance(raw, Mapping):
        raise WorkloadTypeConfigError(f"{where}: must be an object")
    unknown = set(raw) - _KEYS
    if unknown:
        raise WorkloadTypeConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = _str(raw, "name", where, _NAME, "upper-case letters, digits and _, as a serviceEnvironmentType")
    where = f"{where} ({name})"
    if name in BUILT_IN:
        raise WorkloadTypeConfigError(f"{where}.name: {name} is built in and cannot be redefined")
    api_version = _str(raw, "apiVersion", where, _API_VERSION, "group/version such as example.com/v1")
    kind = _str(raw, "kind", where, _KIND, "a Kind such as Widget")
    plural = _str(raw, "plural", where, _PLURAL, "the resource's plural in lower case, such as widgets")
    service = raw.get("service", kind)
    if not isinstance(service, str) or not service:
        raise WorkloadTypeConfigError(f"{where}.service: must be a non-empty string")
    for key in ("succeeded", "failed"):
        if key not in raw:
            raise WorkloadTypeConfigError(f"{where}.{key}: required (how kubatch sees that the workload {key})")
    decl = DeclaredType(
        name=name,
        suspend=parse_path(raw.get("suspendPath", "spec.suspend"), f"{where}.suspendPath"),
        timeout=parse_path(raw["timeoutPath"], f"{where}.timeoutPath") if "timeoutPath" in raw else None,
        templates=_templates(raw.get("podTemplates"), f"{where}.podTemplates"),
        succeeded=_matcher(raw["succeeded"], f"{where}.succeeded"),
        failed=_matcher(raw["failed"], f"{where}.failed"),
        running=_matcher(raw["running"], f"{where}.running") if "running" in raw else None,
        starting=_matcher(raw["starting"], f"{where}.starting") if "starting" in raw else None,
        started_at=parse_path(raw["startedAtPath"], f"{where}.startedAtPath") if "startedAtPath" in raw else None,
    )
    if any(isinstance(p, int) for p in decl.suspend):
        raise WorkloadTypeConfigError(f"{where}.suspendPath: field names only (kubatch patches it)")
    return WorkloadType(
        name=name,
        api_version=api_version,
        kind=kind,
        plural=plural,
        service=service,
        resource_id_name=f"{kind}Uid",
        instances=decl.instances,
        observe=decl.observe,
        prepare=decl.prepare,
        suspended=decl.suspended,
        pod_templates=decl.pod_templates,
        suspend_path=tuple(str(p) for p in decl.suspend),
    )


def parse_workload_types(text: str, source: str = "configuration") -> list[WorkloadType]:
    """The workload types of a configuration file's text: a YAML or JSON list of entries (module
    docstring), or an object with that list under ``serviceWorkloadTypes``."""
    try:
        data = yaml.safe_load(text) if text.strip() else []
    except yaml.YAMLError as e:
        raise WorkloadTypeConfigError(f"{source}: not YAML or JSON: {e}") from None
    if isinstance(data, Mapping) and set(data) == {"serviceWorkloadTypes"}:
        data = data["serviceWorkloadTypes"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise WorkloadTypeConfigError(f"{source}: must be a list of workload types")
    out: list[WorkloadType] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(data):
        wtype = declared_type(raw, f"{source}: serviceWorkloadTypes[{i}]")
        if wtype.name in seen:
            raise WorkloadTypeConfigError(f"{source}: serviceWorkloadTypes[{i}]: type {wtype.name} is declared twice")
        kind = f"{wtype.api_version} {wtype.kind}"
        if kind in seen.values() or kind == "batch/v1 Job":
            raise WorkloadTypeConfigError(f"{source}: serviceWorkloadTypes[{i}]: {kind} is another type's workload")
        seen[wtype.name] = kind
        out.append(wtype)
    return out


def register(types: Sequence[WorkloadType]) -> None:
    """Make ``types`` known (after the built-in ones; a previous configuration's types go)."""
    for name in [n for n in WORKLOAD_TYPES if n not in BUILT_IN]:
        del WORKLOAD_TYPES[name]
    for wtype in types:
        WORKLOAD_TYPES[wtype.name] = wtype


def configured() -> list[WorkloadType]:
    """The types declared by configuration (not built in)."""
    return [w for n, w in WORKLOAD_TYPES.items() if n not in BUILT_IN]


def describe(types: Sequence[WorkloadType]) -> str:
    """One line naming the types, for the start-up log."""
    return json.dumps({w.name: f"{w.api_version} {w.kind} ({w.plural})" for w in types})
