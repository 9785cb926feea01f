"""The benchmark's baseline pods are the pods kubatch would create for the same jobs.

Proves: a baseline pod differs from kubatch's pod for the same job only in what ties it to kubatch
(no ownerReference, label keys moved out of `kubatch.dev/` so the operator leaves it alone, the
baseline's own run/key labels, its name); its spec (requests, placement, environment, grace) is
kubatch's, byte for byte."""

from __future__ import annotations

from bench.baseline import KEY_LABEL, RUN_LABEL, Work, pod_manifest

from kubatch.core.podspec import build_pod


def test_baseline_pod_is_kubatchs_pod_without_the_ties() -> None:
    work = Work("k7", "q", 2, "1s", ("ce",))
    base = pod_manifest("run", work, "ce")
    uid = base["metadata"]["labels"]["bench.kubatch.dev/job-id"]
    job = {
        "apiVersion": "kubatch.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "run-k7", "uid": uid},
        "spec": {
            "jobQueue": "q",
            "jobDefinition": "bench",
            "podMetadata": {"annotations": {"sim.kubatch.dev/duration": "1s"}},
        },
    }
    definition = {
        "type": "container",
        "containerProperties": {
            "image": "busybox:1.36",
            "command": ["sh", "-c", "true"],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "64"}],
        },
    }
    kubatch = build_pod(job, definition, "bench:1", job_id=uid, queue="q", compute_environment="ce", attempt=1)

    assert base["spec"] == kubatch["spec"]
    assert base["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "2"
    assert base["metadata"]["annotations"] == kubatch["metadata"]["annotations"]
    assert "ownerReferences" in kubatch["metadata"] and "ownerReferences" not in base["metadata"]
    labels = base["metadata"]["labels"]
    assert not [k for k in labels if k.startswith("kubatch.dev/")]
    own = {RUN_LABEL, KEY_LABEL}
    assert {k.removeprefix("bench.") for k in set(labels) - own} == set(kubatch["metadata"]["labels"])
    assert labels[RUN_LABEL] == "run" and labels[KEY_LABEL] == "k7"
    assert base["metadata"]["name"] == "run-k7"
