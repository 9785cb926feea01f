"""`kubatch queue` on a quota-managed queue: its quota shares, what they hold and borrow, their fronts."""

from __future__ import annotations

from kubatch.cli.queues import queue_text

QUEUE = {
    "metadata": {"name": "ml"},
    "spec": {
        "priority": 1,
        "jobQueueType": "KUBERNETES_JOB",
        "schedulingPolicy": "quota",
        "quotaShares": [
            {
                "quotaShareName": "research",
                "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}],
                "resourceSharingConfiguration": {"strategy": "LEND"},
            },
            {
                "quotaShareName": "prod",
                "capacityLimits": [{"capacityUnit": "NUM_INSTANCES", "maxCapacity": 2}],
                "resourceSharingConfiguration": {"strategy": "LEND_AND_BORROW", "borrowLimit": 50},
                "preemptionConfiguration": {"inSharePreemption": "ENABLED"},
            },
        ],
    },
    "status": {
        "status": "VALID",
        "queueUtilization": {
            "quotaShareUtilization": {
                "topCapacityUtilization": [
                    {
                        "quotaShareName": "prod",
                        "capacityUsage": [{"capacityUnit": "NUM_INSTANCES", "quantity": 3}],
                        "borrowedCapacity": [{"capacityUnit": "NUM_INSTANCES", "quantity": 1}],
                    },
                    {"quotaShareName": "research", "capacityUsage": [{"capacityUnit": "NUM_INSTANCES", "quantity": 0}]},
                ]
            }
        },
        "frontOfQuotaShares": {
            "quotaShares": {
                "prod": [
                    {
                        "namespace": "ns",
                        "name": "train-7",
                        "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill ...",
                    }
                ],
                "research": [],
            }
        },
    },
}


def test_queue_text_shows_the_quota_shares() -> None:
    text = queue_text(QUEUE, [], width=200)
    assert "Scheduling:  quota shares (quota)" in text
    lines = text.split("Quota shares:\n", 1)[1].splitlines()
    assert lines[0].split() == [
        "QUOTA-SHARE",
        "LIMIT",
        "SHARING",
        "IN-SHARE-PREEMPTION",
        "IN-USE",
        "BORROWED",
        "FIRST-RUNNABLE",
    ]
    research = next(line for line in lines if line.startswith("research"))
    prod = next(line for line in lines if line.startswith("prod"))
    assert "2 NUM_INSTANCES" in research and "LEND" in research and "0 NUM_INSTANCES" in research
    assert "LEND_AND_BORROW 50%" in prod and "ENABLED" in prod
    assert "3 NUM_INSTANCES" in prod and "1 NUM_INSTANCES" in prod
    assert "train-7 (CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY)" in prod
