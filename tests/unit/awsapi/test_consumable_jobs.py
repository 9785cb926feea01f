"""ListJobsByConsumableResource (pure): a job's consumable resources from its definition revision and
overrides, filters, order and pages."""

from __future__ import annotations

from typing import Any

import pytest

from kubatch.awsapi.arns import Arns
from kubatch.awsapi.consumable_jobs import definition_spec, parse_query, records_by_name, select
from kubatch.awsapi.errors import ClientException
from kubatch.core.revisions import LABEL_JOB_DEFINITION, RevisionRecord

ARNS = Arns()
LICENSES = {"consumableResourceProperties": {"consumableResourceList": [{"consumableResource": "licenses",
                                                                         "quantity": 2}]}}  # fmt: skip
TOKENS = {"consumableResourceProperties": {"consumableResourceList": [{"consumableResource": "tokens",
                                                                       "quantity": 1}]}}  # fmt: skip


def job(name: str, definition: str, created: str, *, status: dict[str, Any] | None = None, **spec: Any) -> Any:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": created, "labels": {}},
        "spec": {"jobQueue": "q", "jobDefinition": definition, "jobName": name.upper(), **spec},
        "status": {"jobId": f"id-{name}", **(status or {})},
    }


RECORDS = {
    "render": [RevisionRecord(1, True, TOKENS), RevisionRecord(2, True, LICENSES)],
    "plain": [RevisionRecord(1, True, {})],
}


def test_the_revision_a_job_runs() -> None:
    pinned = job("a", "render", "2026-01-01T00:00:00Z", status={"jobDefinition": "render:1"})
    assert definition_spec(pinned, RECORDS) == TOKENS
    unresolved = job("b", "render", "2026-01-01T00:00:00Z")  # bare name: the latest ACTIVE revision
    assert definition_spec(unresolved, RECORDS) == LICENSES
    assert definition_spec(job("c", "render:1", "2026-01-01T00:00:00Z"), RECORDS) == TOKENS
    assert definition_spec(job("d", "absent", "2026-01-01T00:00:00Z"), RECORDS) == {}


def test_selects_jobs_needing_the_resource_with_overrides() -> None:
    override = {"consumableResourceList": [{"consumableResource": "licenses", "quantity": 5}]}
    jobs = [
        job("old", "render", "2026-01-01T00:00:00Z", status={"jobDefinition": "render:2", "status": "RUNNING",
                                                             "startedAt": "2026-01-01T00:00:05Z"}),
        job("pinned-1", "render", "2026-01-01T00:00:01Z", status={"jobDefinition": "render:1"}),
        job("over", "plain", "2026-01-01T00:00:02Z", consumableResourcePropertiesOverride=override),
        job("none", "plain", "2026-01-01T00:00:03Z"),
    ]  # fmt: skip
    page, token = select(jobs, RECORDS, parse_query({"consumableResource": "licenses"}), ARNS)
    assert token is None
    assert [(j["jobName"], j["quantity"], j["jobStatus"]) for j in page] == [("OVER", 5, "SUBMITTED"),
                                                                            ("OLD", 2, "RUNNING")]  # fmt: skip
    first = page[1]
    assert first["jobArn"] == "arn:aws:batch:us-east-1:000000000000:job/id-old"
    assert first["jobQueueArn"] == "arn:aws:batch:us-east-1:000000000000:job-queue/q"
    assert first["jobDefinitionArn"] == "arn:aws:batch:us-east-1:000000000000:job-definition/render:2"
    assert first["startedAt"] == 1767225605000 and first["createdAt"] == 1767225600000
    assert first["consumableResourceProperties"] == {
        "consumableResourceList": [
            {"consumableResource": "arn:aws:batch:us-east-1:000000000000:consumable-resource/licenses", "quantity": 2}
        ]
    }
    by_arn = parse_query({"consumableResource": "arn:aws:batch:us-east-1:000000000000:consumable-resource/tokens"})
    assert [j["jobName"] for j in select(jobs, RECORDS, by_arn, ARNS)[0]] == ["PINNED-1"]


def test_filters_and_pages() -> None:
    jobs = [job(f"j{i:02d}", "render:2", f"2026-01-01T00:00:{i:02d}Z",
                status={"status": "RUNNING" if i % 2 else "RUNNABLE"}) for i in range(25)]  # fmt: skip
    body: dict[str, Any] = {"consumableResource": "licenses", "maxResults": 4,
                            "filters": [{"name": "JOB_STATUS", "values": ["RUNNING"]}]}  # fmt: skip
    seen: list[str] = []
    while True:
        page, token = select(jobs, RECORDS, parse_query(body), ARNS)
        seen.extend(j["jobName"] for j in page)
        if token is None:
            break
        body["nextToken"] = token
    assert seen == [f"J{i:02d}" for i in range(23, 0, -2)]
    named = {"consumableResource": "licenses", "filters": [{"name": "JOB_NAME", "values": ["j1*"]},
                                                           {"name": "JOB_STATUS", "values": ["RUNNABLE"]}]}  # fmt: skip
    assert [j["jobName"] for j in select(jobs, RECORDS, parse_query(named), ARNS)[0]] == [
        "J18", "J16", "J14", "J12", "J10",
    ]  # fmt: skip
    other = {"consumableResource": "tokens", "nextToken": token or select(jobs, RECORDS, parse_query(
        {"consumableResource": "licenses", "maxResults": 1}), ARNS)[1]}  # fmt: skip
    with pytest.raises(ClientException, match="nextToken"):
        parse_query(other)


@pytest.mark.parametrize(
    "body",
    [{}, {"consumableResource": "x", "filters": [{"name": "SHARE_IDENTIFIER", "values": ["a"]}]},
     {"consumableResource": "x", "filters": [{"name": "JOB_STATUS", "values": ["DONE"]}]},
     {"consumableResource": "x", "maxResults": 101}],
)  # fmt: skip
def test_refused_queries(body: dict[str, Any]) -> None:
    with pytest.raises(ClientException):
        parse_query(body)


def test_records_from_revisions_or_definitions() -> None:
    definition = {"metadata": {"name": "render", "uid": "u1"}, "spec": LICENSES, "status": {"revision": 2}}
    revisions = [{"metadata": {"labels": {LABEL_JOB_DEFINITION: "render", "kubatch.dev/job-definition-uid": "u1"}},
                  "revision": 1, "data": {"spec": TOKENS}}]  # fmt: skip
    records = records_by_name([definition], revisions)
    assert [(r.revision, r.active, r.spec) for r in records["render"]] == [(1, True, TOKENS), (2, True, LICENSES)]
    only_latest = records_by_name([definition], None)
    assert [(r.revision, r.spec) for r in only_latest["render"]] == [(2, LICENSES)]
    deregistered = {**definition, "spec": {**LICENSES, "deregistered": True}}
    assert [r.active for r in records_by_name([deregistered], revisions)["render"]] == [False, False]
