"""CreateComputeEnvironment / UpdateComputeEnvironment requests as ComputeEnvironment objects, the
server's defaults for what AWS's request does not carry, and DeleteComputeEnvironment's rule."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.api.compute_environment import ComputeEnvironment
from kubatch.awsapi.environments import EnvironmentDefaults, deletion_refusal, environment_changes, environment_manifest
from kubatch.awsapi.errors import ClientException

KWOK = EnvironmentDefaults(provisioner="kwok")
EC2_DETAILS = {"subnets": ["subnet-1"], "securityGroupIds": ["sg-1"], "instanceRole": "ecsInstanceRole",
               "ec2KeyPair": "k", "launchTemplate": {"launchTemplateName": "lt"}, "bidPercentage": 50}  # fmt: skip


def managed(**resources: Any) -> dict[str, Any]:
    return {
        "computeEnvironmentName": "gpu-pool",
        "type": "MANAGED",
        "state": "ENABLED",
        "computeResources": {"type": "EC2", "minvCpus": 0, "maxvCpus": 64, "instanceTypes": ["c7g"], **resources},
        "serviceRole": "arn:aws:iam::1:role/AWSBatchServiceRole",
        "eksConfiguration": {"eksClusterArn": "arn:aws:eks:us-east-1:1:cluster/c", "kubernetesNamespace": "batch"},
        "tags": {"team": "vision"},
    }


def test_managed_maps_aws_fields_and_ignores_ec2_details() -> None:
    manifest = environment_manifest(managed(desiredvCpus=4, allocationStrategy="BEST_FIT_PROGRESSIVE",
                                            tags={"cost": "a"}, **EC2_DETAILS), KWOK)  # fmt: skip
    assert manifest["metadata"] == {"name": "gpu-pool"}
    assert manifest["spec"] == {
        "type": "MANAGED",
        "state": "ENABLED",
        "computeResources": {
            "type": "EC2", "minvCpus": 0, "maxvCpus": 64, "desiredvCpus": 4, "instanceTypes": ["c7g"],
            "allocationStrategy": "BEST_FIT_PROGRESSIVE", "tags": {"cost": "a"}, "provisioner": "kwok",
        },
        "tags": {"team": "vision"},
    }  # fmt: skip
    ComputeEnvironment.model_validate(manifest)  # a valid object of the CRD's model


def test_provisioner_from_tags_wins_and_is_not_stored_as_a_tag() -> None:
    body = managed()
    body["tags"] = {"team": "vision", "kubatch.dev/provisioner": "karpenter",
                    "kubatch.dev/node-class": "karpenter.k8s.aws/EC2NodeClass/gpu"}  # fmt: skip
    spec = environment_manifest(body, KWOK)["spec"]
    assert spec["computeResources"]["provisioner"] == "karpenter"
    assert spec["computeResources"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                        "name": "gpu"}  # fmt: skip
    assert spec["tags"] == {"team": "vision"}


def test_server_defaults_fill_what_aws_does_not_carry() -> None:
    defaults = EnvironmentDefaults.parse(
        {
            "provisioner": "karpenter",
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "minScaleDownDelayMinutes": 5,
            "tolerations": [{"key": "example.com/dedicated", "value": "batch", "effect": "NoSchedule"}],
            "allowPrivileged": True,
        }
    )
    spec = environment_manifest(managed(), defaults)["spec"]
    assert spec["computeResources"]["provisioner"] == "karpenter"
    assert spec["computeResources"]["nodeClassRef"]["name"] == "default"
    assert spec["computeResources"]["minScaleDownDelayMinutes"] == 5
    assert spec["tolerations"] == [{"key": "example.com/dedicated", "operator": "Equal", "value": "batch",
                                    "effect": "NoSchedule"}]  # fmt: skip
    assert spec["allowPrivileged"] is True
    # --ce-provisioner wins over the file's.
    assert EnvironmentDefaults.parse({"provisioner": "karpenter"}, "kwok").provisioner == "kwok"


@pytest.mark.parametrize(
    "data",
    [{"provisioner": "ec2"}, {"nodeSelector": {}}, {"nodeClassRef": {"group": "g"}},
     {"tolerations": [{"operator": "Sometimes"}]},
     {"minScaleDownDelayMinutes": -1}, {"unmanagedNodeSelector": {}}, {"allowPrivileged": "yes"}],
)  # fmt: skip
def test_invalid_defaults_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EnvironmentDefaults.parse(data)


def test_managed_without_a_provisioner_is_refused() -> None:
    with pytest.raises(ClientException, match="kubatch needs a provisioner"):
        environment_manifest(managed(), EnvironmentDefaults())


def test_unmanaged_node_selector_default_and_tag() -> None:
    body = {"computeEnvironmentName": "on-prem", "type": "UNMANAGED", "unmanagedvCpus": 16}
    spec = environment_manifest(body, EnvironmentDefaults())["spec"]
    assert spec == {"type": "UNMANAGED", "nodeSelector": {"kubatch.dev/pool": "on-prem"}, "unmanagedvCpus": 16}
    tagged = {**body, "tags": {"kubatch.dev/node-selector": "rack=r1, zone=a"}}
    assert environment_manifest(tagged, KWOK)["spec"]["nodeSelector"] == {"rack": "r1", "zone": "a"}
    custom = EnvironmentDefaults.parse({"unmanagedNodeSelector": {"example.com/pool": "batch-{name}"}})
    assert environment_manifest(body, custom)["spec"]["nodeSelector"] == {"example.com/pool": "batch-on-prem"}
    ComputeEnvironment.model_validate(environment_manifest(body, EnvironmentDefaults()))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "MANAGED"}, "computeEnvironmentName is required"),
        ({"computeEnvironmentName": "Upper_Case", "type": "MANAGED"}, "Kubernetes names"),
        ({"computeEnvironmentName": "x"}, "type is required"),
        ({"computeEnvironmentName": "x", "type": "MANAGED"}, "computeResources is required"),
        ({"computeEnvironmentName": "x", "type": "MANAGED", "computeResources": {"type": "FARGATE", "maxvCpus": 4}},
         "FARGATE is not supported"),
        ({"computeEnvironmentName": "x", "type": "UNMANAGED", "computeResources": {"maxvCpus": 4}},
         "must not be set for an UNMANAGED"),
        ({"computeEnvironmentName": "x", "type": "UNMANAGED", "tags": {"kubatch.dev/provisioner": "kwok"}},
         "apply to MANAGED"),
        ({"computeEnvironmentName": "x", "type": "UNMANAGED", "tags": {"kubatch.dev/other": "1"}},
         "not one of kubatch's tags"),
        ({"computeEnvironmentName": "x", "type": "UNMANAGED", "tags": {"kubatch.dev/node-selector": "novalue"}},
         "key=value"),
        ({"computeEnvironmentName": "x", "type": "MANAGED", "computeResources": {"maxvCpus": 4},
          "tags": {"kubatch.dev/node-class": "a/b/c"}}, "provisioner karpenter only"),
        ({"computeEnvironmentName": "x", "type": "MANAGED", "computeResources": {"maxvCpus": -1}}, "between"),
    ],
)  # fmt: skip
def test_refused_requests(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientException, match=message):
        environment_manifest(body, KWOK)


def test_update_names_only_what_changes() -> None:
    assert environment_changes({"computeEnvironment": "x", "serviceRole": "r"}) == {}
    changes = environment_changes(
        {"computeEnvironment": "x", "state": "DISABLED", "computeResources": {"maxvCpus": 8, "instanceTypes": [],
         "subnets": ["s"]}, "updatePolicy": {"terminateJobsOnUpdate": True}}
    )  # fmt: skip
    assert changes == {
        "state": "DISABLED",
        "computeResources": {"maxvCpus": 8, "instanceTypes": None},  # [] returns to the default
        "updatePolicy": {"terminateJobsOnUpdate": True},
    }
    assert environment_changes({"unmanagedvCpus": 4}) == {"unmanagedvCpus": 4}


def test_deletion_follows_aws_rule() -> None:
    enabled = {"metadata": {"name": "ce"}, "spec": {"type": "MANAGED"}}
    refusal = deletion_refusal(enabled, [])
    assert refusal is not None and refusal.startswith("Cannot delete compute environment ce: it is ENABLED. ")
    assert "you must set its state to DISABLED with the UpdateComputeEnvironment API operation" in refusal
    disabled = {"metadata": {"name": "ce"}, "spec": {"type": "MANAGED", "state": "DISABLED"}}
    assert "job queue(s) q1, q2 use it" in (deletion_refusal(disabled, ["q1", "q2"]) or "")
    assert deletion_refusal(disabled, []) is None


def test_serve_reads_the_defaults_file(tmp_path: Any) -> None:
    import click

    from kubatch.cli.api import environment_defaults

    path = tmp_path / "ce.yaml"
    path.write_text("provisioner: karpenter\nnodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: d}\n")
    defaults = environment_defaults(str(path), None)
    assert defaults.provisioner == "karpenter" and defaults.node_class == {
        "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "d",
    }  # fmt: skip
    assert environment_defaults(None, "kwok").provisioner == "kwok"
    path.write_text("provisioner: ec2\n")
    with pytest.raises(click.BadParameter, match="provisioner must be one of"):
        environment_defaults(str(path), None)
    path.write_text("[1, 2]\n")
    with pytest.raises(click.BadParameter, match="expected an object"):
        environment_defaults(str(path), None)
