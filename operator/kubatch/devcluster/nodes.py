"""Simulated kwok nodes for the local cluster and the tests: the manifests are the kwok provisioner's
(`kubatch.cluster.provisioners.kwok_nodes`); the node stays Ready through kwok's heartbeat stage and
runs its pods through the stages in `hack/cluster/kwok-stages.yaml`."""

from __future__ import annotations

from kubatch.cluster.provisioners.kwok_nodes import GPU_RESOURCE, KWOK_ANNOTATION, kwok_node

__all__ = ["GPU_RESOURCE", "KWOK_ANNOTATION", "kwok_node"]
