"""Submit-time overrides merged into a definition's properties. ``containerOverrides``:
``command`` replaces, ``environment`` merges by name, ``resourceRequirements`` merge by type,
``instanceType`` replaces. ``podOverrides``: containers and initContainers merge by name (an
unnamed override applies to the first container), ``image``/``command``/``args`` replace, ``env``
merges by name, ``resources`` merge per key, other fields replace; metadata labels/annotations
merge. Unnamed containers of a pod template are named ``main`` (one) or ``container-<i>``. Pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from kubatch.core.pods.names import MAIN_CONTAINER, PodSpecError


def merge_by_key(
    base: Sequence[Mapping[str, Any]] | None, over: Sequence[Mapping[str, Any]] | None, key: str
) -> list[dict[str, Any]]:
    """Merge two lists of dicts by ``key``: same key replaced in place, new keys appended."""
    out = [dict(x) for x in base or []]
    index = {x.get(key): i for i, x in enumerate(out)}
    for item in over or []:
        k = item.get(key)
        if k in index:
            out[index[k]] = dict(item)
        else:
            index[k] = len(out)
            out.append(dict(item))
    return out


def requirements(props: Mapping[str, Any]) -> list[dict[str, Any]]:
    """resourceRequirements, with the deprecated vcpus/memory keys added when not given by type."""
    reqs = [dict(r) for r in props.get("resourceRequirements") or []]
    types = {str(r.get("type", "")).upper() for r in reqs}
    if props.get("vcpus") is not None and "VCPU" not in types:
        reqs.append({"type": "VCPU", "value": str(props["vcpus"])})
    if props.get("memory") is not None and "MEMORY" not in types:
        reqs.append({"type": "MEMORY", "value": str(props["memory"])})
    for r in reqs:
        r["type"] = str(r.get("type", "")).upper()
    return reqs


def apply_container_overrides(props: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """containerProperties + containerOverrides (command replaces, environment merged by name,
    resourceRequirements merged by type, instanceType replaces)."""
    out = copy.deepcopy(dict(props))
    out["resourceRequirements"] = requirements(out)
    out.pop("vcpus", None)
    out.pop("memory", None)
    if not overrides:
        return out
    if overrides.get("command") is not None:
        out["command"] = list(overrides["command"])
    if overrides.get("environment") is not None:
        out["environment"] = merge_by_key(out.get("environment"), overrides["environment"], "name")
    over_reqs = requirements(overrides)
    if over_reqs:
        out["resourceRequirements"] = merge_by_key(out["resourceRequirements"], over_reqs, "type")
    if overrides.get("instanceType"):
        out["instanceType"] = overrides["instanceType"]
    return out


def _merge_container(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    for key, value in over.items():
        if key == "name":
            continue
        if key == "env":
            base["env"] = merge_by_key(base.get("env"), value, "name")
        elif key == "resources":
            res = copy.deepcopy(base.get("resources") or {})
            for part in ("limits", "requests"):
                if (value or {}).get(part) is not None:
                    res[part] = {**(res.get(part) or {}), **value[part]}
            base["resources"] = res
        else:
            base[key] = copy.deepcopy(value)


def apply_pod_overrides(template: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """podProperties + podOverrides (module docstring). Raises PodSpecError for an override naming
    a container the template does not have."""
    out = copy.deepcopy(dict(template))
    _name_containers(out)
    if not overrides:
        return out
    for field_name in ("containers", "initContainers"):
        for over in overrides.get(field_name) or []:
            targets = out.get(field_name) or []
            name = over.get("name")
            match = next((c for c in targets if c.get("name") == name), None) if name else None
            if match is None and not name and targets:
                match = targets[0]
            if match is None:
                raise PodSpecError(f"podOverrides: no {field_name} entry named {name!r} in the job definition")
            _merge_container(match, over)
    meta = overrides.get("metadata") or {}
    if meta:
        target = out.setdefault("metadata", {})
        for part in ("labels", "annotations"):
            if meta.get(part):
                target[part] = {**(target.get(part) or {}), **meta[part]}
    return out


def _name_containers(template: dict[str, Any]) -> None:
    containers = template.get("containers") or []
    for i, c in enumerate(containers):
        if not c.get("name"):
            c["name"] = MAIN_CONTAINER if len(containers) == 1 else f"container-{i}"
    for i, c in enumerate(template.get("initContainers") or []):
        if not c.get("name"):
            c["name"] = f"init-{i}"
