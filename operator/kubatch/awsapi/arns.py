"""ARNs in AWS Batch's format, and names or ARNs wherever AWS accepts either.

``arn:aws:batch:<region>:<account>:job/<jobId>``, ``job-queue/<name>``,
``job-definition/<name>:<revision>``, ``compute-environment/<name>``, ``scheduling-policy/<name>``,
``consumable-resource/<name>``; region and account are the API's configuration (``us-east-1`` and
``000000000000`` by default). An ARN given in a request is read for its name (and revision) only: a
key acts in its namespace, whatever region or account the ARN names.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubatch.awsapi.errors import ClientException

JOB = "job"
JOB_QUEUE = "job-queue"
JOB_DEFINITION = "job-definition"
COMPUTE_ENVIRONMENT = "compute-environment"
SCHEDULING_POLICY = "scheduling-policy"
CONSUMABLE_RESOURCE = "consumable-resource"


@dataclass(frozen=True)
class Arns:
    region: str = "us-east-1"
    account: str = "000000000000"
    partition: str = "aws"

    def arn(self, kind: str, name: str) -> str:
        return f"arn:{self.partition}:batch:{self.region}:{self.account}:{kind}/{name}"

    def job(self, job_id: str) -> str:
        return self.arn(JOB, job_id)

    def job_queue(self, name: str) -> str:
        return self.arn(JOB_QUEUE, name)

    def job_definition(self, name: str, revision: int | str | None = None) -> str:
        return self.arn(JOB_DEFINITION, f"{name}:{revision}" if revision is not None else name)

    def compute_environment(self, name: str) -> str:
        return self.arn(COMPUTE_ENVIRONMENT, name)

    def scheduling_policy(self, name: str) -> str:
        return self.arn(SCHEDULING_POLICY, name)

    def consumable_resource(self, name: str) -> str:
        return self.arn(CONSUMABLE_RESOURCE, name)


def split_arn(value: str) -> tuple[str, str] | None:
    """(resource kind, resource) of a Batch ARN; None when ``value`` is not an ARN."""
    if not value.startswith("arn:"):
        return None
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[2] != "batch" or "/" not in parts[5]:
        raise ClientException(f"{value} is not an AWS Batch ARN")
    kind, _, resource = parts[5].partition("/")
    return kind, resource


def name_of(value: str, kind: str, what: str) -> str:
    """The name in ``value``, a name or an ARN of ``kind`` (``what`` names the field in errors)."""
    arn = split_arn(value)
    if arn is None:
        return value
    if arn[0] != kind or not arn[1]:
        raise ClientException(f"{what}: {value} is not a {kind} ARN")
    return arn[1]


def job_id_of(value: str) -> str:
    """A job id, given as an id or a job ARN."""
    return name_of(value, JOB, "jobId")
