"""linuxParameters on the real control plane: initProcessEnabled gives the pod a shared process
namespace (the pause process is PID 1); devices and logConfiguration are accepted and ignored."""

from __future__ import annotations

import pytest

from tests.integration.batch import Batch

pytestmark = pytest.mark.integration


def test_init_process_enabled_and_ignored_fields(batch: Batch) -> None:
    q = batch.queue([batch.environment(cpu=2)])
    batch.definition(
        "init",
        {
            "type": "container",
            "containerProperties": {
                "image": "busybox:1.36",
                "command": ["sh", "-c", "sleep 1"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}],
                "linuxParameters": {"initProcessEnabled": True},
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}},
            },
        },
    )
    batch.job("with-init", q, "init", duration="20s")
    batch.wait_status("with-init", "RUNNING", timeout=90)
    pod = batch.pods("with-init")[0]
    assert pod["spec"].get("shareProcessNamespace") is True
    assert batch.wait_done("with-init")["status"] == "SUCCEEDED"
