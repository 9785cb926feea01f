"""Cross-object admission rules (kubatch.core.admission): one test per rule, then property tests."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.admission import (
    Violation,
    World,
    definition_records,
    dependency_cycle,
    references,
    requested_privileges,
    selector_matches,
    submitted_while_disabled,
    validate_batch_job,
    validate_job_definition,
    validate_job_queue,
)
from kubatch.core.revisions import RevisionRecord

CONTAINER = {"image": "busybox", "command": ["true"]}
POD = {"containers": [{"name": "main", "image": "busybox"}]}


def queue(envs: tuple[str, ...] = ("ce",), **spec: Any) -> dict[str, Any]:
    order = [{"order": i, "computeEnvironment": e} for i, e in enumerate(envs)]
    return {"metadata": {"name": "q"}, "spec": {"priority": 1, "computeEnvironmentOrder": order, **spec}}


def env(**spec: Any) -> dict[str, Any]:
    return {"spec": {"type": "UNMANAGED", **spec}}


def definition(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "d"}, "spec": {"type": "container", "containerProperties": CONTAINER, **spec}}


def job(name: str = "j", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"jobQueue": "q", "jobDefinition": "d", **spec},
    }


def world(**kw: Any) -> World:
    w = World(
        namespace="ns",
        queues={"q": queue()},
        envs={"ce": env()},
        definitions={"d": definition()},
        namespace_labels={"kubernetes.io/metadata.name": "ns", "team": "a"},
    )
    for key, value in kw.items():
        setattr(w, key, value)
    return w


def fields(violations: list[Violation]) -> list[str]:
    return [v.field for v in violations]


def only(violations: list[Violation]) -> Violation:
    assert len(violations) == 1, violations
    return violations[0]


def test_a_valid_job_passes() -> None:
    assert validate_batch_job(job(), world()) == []


# ---- queue ---------------------------------------------------------------------------------------------
def test_missing_queue() -> None:
    v = only(validate_batch_job(job(jobQueue="q1"), world()))
    assert str(v) == 'spec.jobQueue: job queue "q1" does not exist'


def test_disabled_queue() -> None:
    v = only(validate_batch_job(job(), world(queues={"q": queue(state="DISABLED")})))
    assert v.field == "spec.jobQueue" and '"q" is DISABLED' in v.message
    assert "new jobs can't be added to the queue" in v.message


def test_disabled_queue_judged_after_the_fact_refuses_only_later_jobs() -> None:
    """The controller judges a job after its creation: a job created before the queue was disabled
    was already queued and runs; one created in a later second than the disable is refused; one of
    the same second (creationTimestamp has whole seconds) gets the benefit of the doubt."""
    disabled = {"q": queue(state="DISABLED")}
    since = {"q": 1000.4}
    assert validate_batch_job(job(), world(queues=disabled, created_at=999.0, disabled_since=since)) == []
    assert validate_batch_job(job(), world(queues=disabled, created_at=1000.0, disabled_since=since)) == []
    v = only(validate_batch_job(job(), world(queues=disabled, created_at=1001.0, disabled_since=since)))
    assert '"q" is DISABLED' in v.message
    assert submitted_while_disabled(None, 1000.4) and submitted_while_disabled(5.0, None)
    assert not submitted_while_disabled(1000.0, 1000.4) and submitted_while_disabled(1001.0, 1000.4)


@pytest.mark.parametrize(
    ("selector", "admitted"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {"team": "a"}}, True),
        ({"matchLabels": {"team": "b"}}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "c"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
        ({"matchLabels": {"kubernetes.io/metadata.name": "ns"}}, True),
    ],
)
def test_namespace_selector(selector: dict[str, Any] | None, admitted: bool) -> None:
    q = queue(**({"namespaceSelector": selector} if selector is not None else {}))
    violations = validate_batch_job(job(), world(queues={"q": q}))
    assert (violations == []) is admitted
    if not admitted:
        assert only(violations).field == "spec.jobQueue" and 'namespace "ns"' in violations[0].message


def test_namespace_selector_skipped_when_labels_unknown() -> None:
    q = queue(namespaceSelector={"matchLabels": {"team": "b"}})
    assert validate_batch_job(job(), world(queues={"q": q}, namespace_labels=None)) == []


def test_selector_unknown_operator_matches_nothing() -> None:
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt"}]}, {"a": "1"})


# ---- definition ----------------------------------------------------------------------------------------
def test_missing_definition() -> None:
    v = only(validate_batch_job(job(jobDefinition="nope"), world()))
    assert str(v) == 'spec.jobDefinition: job definition "nope" does not exist in namespace "ns"'


def test_definition_revisions() -> None:
    spec = definition()["spec"]
    w = world(revisions={"d": [RevisionRecord(1, True, spec), RevisionRecord(2, False, spec)]})
    assert validate_batch_job(job(jobDefinition="d:1"), w) == []
    assert "d:2" in only(validate_batch_job(job(jobDefinition="d:2"), w)).message
    assert "INACTIVE" in only(validate_batch_job(job(jobDefinition="d:2"), w)).message
    missing = only(validate_batch_job(job(jobDefinition="d:9"), w))
    assert missing.field == "spec.jobDefinition" and '"d:9" does not exist' in missing.message


def test_deregistered_definition_is_inactive() -> None:
    spec = definition()["spec"]
    w = world(definitions={"d": definition(deregistered=True)}, revisions={"d": [RevisionRecord(1, True, spec)]})
    assert "no ACTIVE revision" in only(validate_batch_job(job(), w)).message
    assert "INACTIVE" in only(validate_batch_job(job(jobDefinition="d:1"), w)).message


def test_a_revision_being_recorded_counts() -> None:
    """The definition exists but its ControllerRevision is not there yet: revision 1 is coming."""
    w = world(revisions={})
    assert validate_batch_job(job(jobDefinition="d:1"), w) == []
    assert "d:2" in only(validate_batch_job(job(jobDefinition="d:2"), w)).message


def test_definition_records_add_the_pending_revision_only_for_a_new_spec() -> None:
    jd = definition()
    same = RevisionRecord(1, True, {k: v for k, v in jd["spec"].items()})
    assert [r.revision for r in definition_records(jd, [same])] == [1]
    changed = definition(timeout={"attemptDurationSeconds": 60})
    assert [r.revision for r in definition_records(changed, [same])] == [1, 2]
    assert definition_records(None, [same]) == [same]


def test_retired_revisions_serve_no_submission_but_keep_the_numbering() -> None:
    """Revisions left by a deleted definition (current=False) are never resolved for a new job, and
    the revision a re-created definition is about to record is numbered after them."""
    spec = definition()["spec"]
    retired = [RevisionRecord(1, False, spec, current=False), RevisionRecord(2, False, spec, current=False)]
    w = world(revisions={"d": retired})
    assert validate_batch_job(job(), w) == []  # resolves to the coming revision 3
    assert "INACTIVE" in only(validate_batch_job(job(jobDefinition="d:2"), w)).message
    assert [(r.revision, r.active) for r in definition_records(definition(), retired)] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    gone = only(validate_batch_job(job(jobDefinition="d:2"), world(definitions={}, revisions={"d": retired})))
    assert 'job definition "d" does not exist' in gone.message


def test_invalid_reference() -> None:
    assert only(validate_batch_job(job(jobDefinition="Bad Name"), world())).field == "spec.jobDefinition"


# ---- dependencies --------------------------------------------------------------------------------------
def test_missing_dependency() -> None:
    v = only(validate_batch_job(job(dependsOn=[{"jobName": "a"}]), world()))
    assert str(v) == 'spec.dependsOn[0].jobName: job "a" does not exist in namespace "ns"'


def test_self_dependency() -> None:
    v = only(validate_batch_job(job(dependsOn=[{"jobName": "j"}]), world()))
    assert v.field == "spec.dependsOn[0].jobName" and "itself" in v.message


def test_cycle_through_existing_jobs() -> None:
    jobs = {"a": job("a", dependsOn=[{"jobName": "b"}]), "b": job("b", dependsOn=[{"jobName": "j"}])}
    v = only(validate_batch_job(job(dependsOn=[{"jobName": "a"}]), world(jobs=jobs)))
    assert str(v) == 'spec.dependsOn: dependency cycle "j" -> "a" -> "b" -> "j"'


def test_an_existing_cycle_elsewhere_does_not_block() -> None:
    jobs = {
        "a": job("a", dependsOn=[{"jobName": "b"}]),
        "b": job("b", dependsOn=[{"jobName": "a"}]),
        "c": job("c"),
    }
    assert validate_batch_job(job(dependsOn=[{"jobName": "c"}]), world(jobs=jobs)) == []


def test_n_to_n_needs_arrays_of_the_same_size() -> None:
    jobs = {"plain": job("plain"), "four": job("four", arrayProperties={"size": 4})}
    w = world(jobs=jobs)
    arr = {"arrayProperties": {"size": 4}}
    assert validate_batch_job(job(dependsOn=[{"jobName": "four", "type": "N_TO_N"}], **arr), w) == []
    v = only(validate_batch_job(job(dependsOn=[{"jobName": "plain", "type": "N_TO_N"}], **arr), w))
    assert v.field == "spec.dependsOn[0].type" and "array job" in v.message
    v = only(validate_batch_job(job(dependsOn=[{"jobName": "four", "type": "N_TO_N"}], arrayProperties={"size": 3}), w))
    assert v.field == "spec.dependsOn[0].type" and "(4 != 3)" in v.message
    v = only(validate_batch_job(job(dependsOn=[{"jobName": "four", "type": "N_TO_N"}]), w))
    assert v.field == "spec.dependsOn[0].type"


def test_sequential_entries_need_no_target() -> None:
    spec = {"arrayProperties": {"size": 3}, "dependsOn": [{"type": "SEQUENTIAL"}]}
    assert validate_batch_job(job(**spec), world()) == []


# ---- fair share ----------------------------------------------------------------------------------------
def test_share_identifier_rules() -> None:
    fair = world(queues={"q": queue(schedulingPolicy="p")})
    assert validate_batch_job(job(shareIdentifier="a", schedulingPriorityOverride=3), fair) == []
    v = only(validate_batch_job(job(), fair))
    assert v.field == "spec.shareIdentifier" and "required" in v.message and '"p"' in v.message
    fifo = world()
    v = only(validate_batch_job(job(shareIdentifier="a"), fifo))
    assert v.field == "spec.shareIdentifier" and '"a"' in v.message and "FIFO" in v.message
    v = only(validate_batch_job(job(schedulingPriorityOverride=5), fifo))
    assert v.field == "spec.schedulingPriorityOverride" and "5" in v.message


# ---- consumable resources ------------------------------------------------------------------------------
def test_consumable_resources_must_exist() -> None:
    needs = {"consumableResourceList": [{"consumableResource": "lic", "quantity": 1}]}
    w = world(definitions={"d": definition(consumableResourceProperties=needs)})
    v = only(validate_batch_job(job(), w))
    assert v.field == "spec.jobDefinition" and '"lic"' in v.message
    w.consumables = {"lic": {"spec": {"totalQuantity": 1}}}
    assert validate_batch_job(job(), w) == []
    override = {"consumableResourceList": [{"consumableResource": "tok", "quantity": 2}]}
    v = only(validate_batch_job(job(consumableResourcePropertiesOverride=override), w))
    assert v.field == "spec.consumableResourcePropertiesOverride.consumableResourceList[0].consumableResource"
    assert '"tok"' in v.message


# ---- overrides -----------------------------------------------------------------------------------------
def test_overrides_match_the_definition_type() -> None:
    w = world()
    assert fields(validate_batch_job(job(podOverrides={"containers": [{"name": "main"}]}), w)) == ["spec.podOverrides"]
    assert fields(validate_batch_job(job(nodeOverrides={"numNodes": 2}), w)) == ["spec.nodeOverrides"]
    pod = world(definitions={"d": {"spec": {"type": "container", "podProperties": POD}}})
    assert fields(validate_batch_job(job(containerOverrides={"command": ["x"]}), pod)) == ["spec.containerOverrides"]
    assert validate_batch_job(job(podOverrides={"containers": [{"name": "main", "image": "x"}]}), pod) == []
    v = only(validate_batch_job(job(podOverrides={"containers": [{"name": "side"}]}), pod))
    assert v.field == "spec.podOverrides.containers[0].name" and '"side"' in v.message


def test_multinode_rules() -> None:
    node_props = {"numNodes": 3, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:2", "container": CONTAINER}]}
    w = world(definitions={"d": {"spec": {"type": "multinode", "nodeProperties": node_props}}})
    assert validate_batch_job(job(nodeOverrides={"numNodes": 2}), w) == []
    assert fields(validate_batch_job(job(arrayProperties={"size": 2}), w)) == ["spec.arrayProperties"]
    assert fields(validate_batch_job(job(containerOverrides={"command": ["x"]}), w)) == ["spec.containerOverrides"]
    v = only(validate_batch_job(job(nodeOverrides={"numNodes": 5}), w))
    assert v.field == "spec.nodeOverrides.numNodes" and "node 3" in v.message


# ---- privileges ----------------------------------------------------------------------------------------
PRIVILEGED = {"image": "busybox", "privileged": True}
HOST_NET_POD = {"hostNetwork": True, "containers": [{"name": "main", "image": "busybox"}]}
HOST_PATH_POD = {"containers": [{"name": "main", "image": "b"}], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}


@pytest.mark.parametrize(
    ("spec", "flag", "allow"),
    [
        ({"containerProperties": PRIVILEGED}, "privileged", "allowPrivileged"),
        ({"podProperties": HOST_NET_POD}, "hostNetwork", "allowHostNetwork"),
        ({"podProperties": HOST_PATH_POD}, "hostPath", "allowHostPath"),
        (
            {"containerProperties": {"image": "b", "volumes": [{"name": "v", "host": {"sourcePath": "/data"}}]}},
            "hostPath",
            "allowHostPath",
        ),
        (
            {"containerProperties": {"image": "b", "linuxParameters": {"devices": [{"hostPath": "/dev/fuse"}]}}},
            "hostPath",
            "allowHostPath",
        ),
        (
            {
                "podProperties": {
                    "containers": [{"name": "main", "image": "b", "securityContext": {"privileged": True}}]
                }
            },
            "privileged",
            "allowPrivileged",
        ),
    ],
)
def test_privileges_need_queue_and_every_environment(spec: dict[str, Any], flag: str, allow: str) -> None:
    jd = {"spec": {"type": "container", **spec}}
    assert requested_privileges(jd["spec"], {}) == {flag}
    closed = world(queues={"q": queue(("ce", "ce2"))}, envs={"ce": env(), "ce2": env()}, definitions={"d": jd})
    v = only(validate_batch_job(job(), closed))
    assert v.field == "spec.jobDefinition" and f"spec.{allow}: true" in v.message
    assert 'job queue "q"' in v.message and 'compute environment "ce"' in v.message
    half = world(
        queues={"q": queue(("ce", "ce2"), **{allow: True})},
        envs={"ce": env(**{allow: True}), "ce2": env()},
        definitions={"d": jd},
    )
    v = only(validate_batch_job(job(), half))
    assert 'compute environment "ce2"' in v.message and 'job queue "q"' not in v.message
    assert 'environment "ce"' not in v.message
    opened = world(
        queues={"q": queue(("ce", "ce2"), **{allow: True})},
        envs={"ce": env(**{allow: True}), "ce2": env(**{allow: True})},
        definitions={"d": jd},
    )
    assert validate_batch_job(job(), opened) == []


def test_multinode_privileges_count_every_range() -> None:
    ranges = [{"targetNodes": "0", "container": CONTAINER}, {"targetNodes": "1:", "container": PRIVILEGED}]
    spec = {"type": "multinode", "nodeProperties": {"numNodes": 2, "nodeRangeProperties": ranges}}
    assert requested_privileges(spec, {}) == {"privileged"}


# ---- JobQueue / JobDefinition --------------------------------------------------------------------------
def test_queue_references() -> None:
    w = world()
    assert validate_job_queue(queue(), w) == []
    v = only(validate_job_queue(queue(("ce", "gone")), w))
    assert str(v) == 'spec.computeEnvironmentOrder[1].computeEnvironment: compute environment "gone" does not exist'
    v = only(validate_job_queue(queue(schedulingPolicy="p"), w))
    assert str(v) == 'spec.schedulingPolicy: scheduling policy "p" does not exist'
    # An update is judged on what it changes.
    old = queue(("ce", "gone"), schedulingPolicy="p")
    assert validate_job_queue(queue(("ce", "gone"), schedulingPolicy="p", priority=5), w, old) == []
    assert fields(validate_job_queue(queue(("ce", "gone", "new")), w, old)) == [
        "spec.computeEnvironmentOrder[2].computeEnvironment"
    ]


def test_queue_environments_share_one_architecture() -> None:
    """AWS: "All compute environments that are associated with a job queue must share the same
    architecture"; an UNMANAGED environment counts with its nodeSelector's kubernetes.io/arch."""

    def managed(*types: str) -> dict[str, Any]:
        return {"spec": {"type": "MANAGED", "computeResources": {"maxvCpus": 8, "instanceTypes": list(types)}}}

    envs = {
        "x86": managed("c6i"),
        "default": managed(),
        "arm": managed("default_arm64"),
        "arm-pool": {"spec": {"type": "UNMANAGED", "nodeSelector": {"kubernetes.io/arch": "arm64"}}},
        "any-pool": env(),
        "broken": managed("m7g", "m7i"),
    }
    w = world(envs=envs)
    assert validate_job_queue(queue(("x86", "default", "any-pool")), w) == []
    assert validate_job_queue(queue(("arm", "arm-pool", "broken")), w) == []  # broken reports itself
    v = only(validate_job_queue(queue(("x86", "arm")), w))
    assert v.field == "spec.computeEnvironmentOrder"
    assert "x86 (x86_64), arm (arm64)" in v.message and "must share the same architecture" in v.message
    assert fields(validate_job_queue(queue(("default", "arm-pool")), w)) == ["spec.computeEnvironmentOrder"]
    # An update that leaves the list alone is not refused for it (the queue's status reports it).
    mixed = queue(("x86", "arm"))
    assert validate_job_queue(queue(("x86", "arm"), priority=5), w, mixed) == []


def test_definition_consumables_and_node_images() -> None:
    needs = {"consumableResourceList": [{"consumableResource": "lic", "quantity": 1}]}
    jd = definition(consumableResourceProperties=needs)
    v = only(validate_job_definition(jd, world()))
    assert v.field == "spec.consumableResourceProperties.consumableResourceList[0].consumableResource"
    # Deregistering a definition whose resource is gone is fine.
    assert validate_job_definition(definition(consumableResourceProperties=needs, deregistered=True), world(), jd) == []
    ranges = [
        {"targetNodes": "0", "container": {"image": ""}},
        {"targetNodes": "1", "podProperties": {"containers": [{}]}},
    ]
    multi = {"spec": {"type": "multinode", "nodeProperties": {"numNodes": 2, "nodeRangeProperties": ranges}}}
    assert fields(validate_job_definition(multi, world())) == [
        "spec.nodeProperties.nodeRangeProperties[0].container.image",
        "spec.nodeProperties.nodeRangeProperties[1].podProperties.containers[0].image",
    ]


def test_references_follow_the_queue_and_definition() -> None:
    needs = {"consumableResourceList": [{"consumableResource": "lic", "quantity": 1}]}
    w = world(
        queues={"q": queue(("ce",), schedulingPolicy="p")},
        definitions={"d": definition(consumableResourceProperties=needs)},
    )
    refs = references("BatchJob", job(dependsOn=[{"jobName": "a"}, {"type": "SEQUENTIAL"}]), w)
    assert refs == {
        ("JobQueue", "q"),
        ("ComputeEnvironment", "ce"),
        ("SchedulingPolicy", "p"),
        ("JobDefinition", "d"),
        ("ConsumableResource", "lic"),
        ("BatchJob", "a"),
    }
    assert references("BatchJob", job(), World(namespace="ns")) == {("JobQueue", "q"), ("JobDefinition", "d")}


def test_all_violations_are_reported_together() -> None:
    spec = {"jobQueue": "nope", "jobDefinition": "gone", "dependsOn": [{"jobName": "x"}]}
    assert fields(validate_batch_job(job(**spec), world())) == [
        "spec.jobQueue",
        "spec.jobDefinition",
        "spec.dependsOn[0].jobName",
    ]


# ---- property tests ------------------------------------------------------------------------------------
NAMES = st.sampled_from(["a", "b", "c", "d", "e", "j", "q", "ce", "p", "lic"])
FIELD = re.compile(r"^(spec|metadata)(\.[A-Za-z]+(\[\d+\])?)*$")
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), NAMES, st.text(max_size=5))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), SCALARS, strategy)


deps_st = st.lists(
    st.fixed_dictionaries(
        {}, optional={"jobName": maybe(NAMES), "type": maybe(st.sampled_from(["N_TO_N", "SEQUENTIAL"]))}
    ),
    max_size=4,
)
consumables_st = st.fixed_dictionaries(
    {},
    optional={"consumableResourceList": maybe(st.lists(st.fixed_dictionaries({"consumableResource": maybe(NAMES)})))},
)
container_st = st.fixed_dictionaries(
    {},
    optional={
        "image": maybe(NAMES),
        "privileged": maybe(st.booleans()),
        "volumes": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "host": maybe(st.fixed_dictionaries({"sourcePath": maybe(NAMES)})),
                        "hostPath": maybe(st.just({"path": "/"})),
                    },
                )
            )
        ),
        "resourceRequirements": maybe(st.lists(st.fixed_dictionaries({"type": maybe(NAMES), "value": maybe(NAMES)}))),
    },
)
pod_st = st.fixed_dictionaries(
    {},
    optional={
        "hostNetwork": maybe(st.booleans()),
        "containers": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": maybe(NAMES),
                        "image": maybe(NAMES),
                        "securityContext": maybe(st.fixed_dictionaries({"privileged": maybe(st.booleans())})),
                    },
                ),
                max_size=3,
            )
        ),
        "volumes": maybe(st.lists(st.fixed_dictionaries({}, optional={"hostPath": maybe(st.just({"path": "/"}))}))),
    },
)
node_props_st = st.fixed_dictionaries(
    {},
    optional={
        "numNodes": maybe(st.integers(0, 6)),
        "mainNode": maybe(st.integers(0, 6)),
        "nodeRangeProperties": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "targetNodes": maybe(st.sampled_from(["0", "1:", ":2", "0:3", "x", "3:1", ":"])),
                        "container": maybe(container_st),
                        "podProperties": maybe(pod_st),
                    },
                ),
                max_size=3,
            )
        ),
    },
)
definition_spec_st = st.fixed_dictionaries(
    {},
    optional={
        "type": maybe(st.sampled_from(["container", "multinode"])),
        "containerProperties": maybe(container_st),
        "podProperties": maybe(pod_st),
        "nodeProperties": maybe(node_props_st),
        "consumableResourceProperties": maybe(consumables_st),
        "deregistered": maybe(st.booleans()),
    },
)
job_spec_st = st.fixed_dictionaries(
    {},
    optional={
        "jobQueue": maybe(NAMES),
        "jobDefinition": maybe(st.sampled_from(["d", "d:1", "d:2", "e", "d:x", ""])),
        "arrayProperties": maybe(st.fixed_dictionaries({"size": maybe(st.integers(0, 5))})),
        "dependsOn": maybe(deps_st),
        "shareIdentifier": maybe(NAMES),
        "schedulingPriorityOverride": maybe(st.integers(0, 9)),
        "containerOverrides": maybe(st.fixed_dictionaries({}, optional={"command": maybe(st.lists(NAMES))})),
        "podOverrides": maybe(
            st.fixed_dictionaries(
                {}, optional={"containers": maybe(st.lists(st.fixed_dictionaries({}, optional={"name": maybe(NAMES)})))}
            )
        ),
        "nodeOverrides": maybe(st.fixed_dictionaries({}, optional={"numNodes": maybe(st.integers(0, 8))})),
        "consumableResourcePropertiesOverride": maybe(consumables_st),
    },
)
queue_spec_st = st.fixed_dictionaries(
    {},
    optional={
        "state": maybe(st.sampled_from(["ENABLED", "DISABLED"])),
        "schedulingPolicy": maybe(NAMES),
        "computeEnvironmentOrder": maybe(
            st.lists(st.fixed_dictionaries({}, optional={"computeEnvironment": maybe(NAMES)}), max_size=3)
        ),
        "namespaceSelector": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "matchLabels": maybe(st.dictionaries(NAMES, NAMES, max_size=2)),
                    "matchExpressions": maybe(
                        st.lists(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "key": maybe(NAMES),
                                    "operator": maybe(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt"])),
                                    "values": maybe(st.lists(NAMES)),
                                },
                            ),
                            max_size=2,
                        )
                    ),
                },
            )
        ),
        "allowPrivileged": maybe(st.booleans()),
        "allowHostNetwork": maybe(st.booleans()),
        "allowHostPath": maybe(st.booleans()),
    },
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    names = st.lists(NAMES, max_size=4, unique=True)
    jobs = {n: {"metadata": {"name": n}, "spec": draw(job_spec_st)} for n in draw(names)}
    return World(
        namespace="ns",
        queues={n: {"spec": draw(queue_spec_st)} for n in draw(names)},
        envs={
            n: {"spec": draw(st.fixed_dictionaries({}, optional={"allowPrivileged": maybe(st.booleans())}))}
            for n in draw(names)
        },
        policies={n: {} for n in draw(names)},
        consumables={n: {} for n in draw(names)},
        definitions={n: {"spec": draw(definition_spec_st)} for n in draw(names)},
        revisions={
            n: [
                RevisionRecord(r, draw(st.booleans()), draw(definition_spec_st))
                for r in draw(st.sets(st.integers(1, 3), max_size=3))
            ]
            for n in draw(names)
        },
        jobs=jobs,
        namespace_labels=draw(st.one_of(st.none(), st.dictionaries(NAMES, NAMES, max_size=3))),
    )


def assert_named(violations: list[Violation]) -> None:
    for v in violations:
        assert FIELD.match(v.field), v
        assert v.message and str(v).startswith(v.field + ": ")


@given(spec=job_spec_st, w=worlds(), name=maybe(NAMES))
def test_random_jobs_never_crash_and_every_rejection_names_a_field(spec: dict[str, Any], w: World, name: Any) -> None:
    obj = {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}
    assert_named(validate_batch_job(obj, w))
    references("BatchJob", obj, w)


@given(spec=queue_spec_st, old=maybe(queue_spec_st), w=worlds())
def test_random_queues_never_crash(spec: dict[str, Any], old: Any, w: World) -> None:
    assert_named(validate_job_queue({"spec": spec}, w, {"spec": old} if isinstance(old, dict) else None))
    references("JobQueue", {"spec": spec}, w)


@given(spec=definition_spec_st, w=worlds())
def test_random_definitions_never_crash(spec: dict[str, Any], w: World) -> None:
    assert_named(validate_job_definition({"spec": spec}, w))


@given(
    edges=st.dictionaries(NAMES, st.lists(NAMES, max_size=3), max_size=8),
    deps=st.lists(NAMES, max_size=3),
)
def test_random_dependency_graphs(edges: dict[str, list[str]], deps: list[str]) -> None:
    existing = [
        {"metadata": {"name": n}, "spec": {"dependsOn": [{"jobName": t} for t in ts]}} for n, ts in edges.items()
    ]
    new = {"metadata": {"name": "new"}, "spec": {"dependsOn": [{"jobName": t} for t in deps]}}
    cycle = dependency_cycle(new, existing)
    graph = {n: set(ts) for n, ts in edges.items()}
    graph["new"] = set(deps)
    # Reference answer: can "new" reach itself?
    seen: set[str] = set()
    stack = list(graph["new"])
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(graph.get(node, ()))
    assert (cycle is not None) == ("new" in seen)
    if cycle is not None:
        assert cycle[0] == cycle[-1] == "new"
        assert all(b in graph.get(a, ()) for a, b in itertools.pairwise(cycle))
        w = World(namespace="ns", queues={"q": queue()}, envs={"ce": env()}, definitions={"d": definition()})
        w.jobs = {str(j["metadata"]["name"]): j for j in existing}
        obj = {
            "metadata": {"name": "new", "namespace": "ns"},
            "spec": {"jobQueue": "q", "jobDefinition": "d", **new["spec"]},
        }
        assert "spec.dependsOn" in fields(validate_batch_job(obj, w))
