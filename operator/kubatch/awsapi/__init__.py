"""The AWS Batch API server: existing AWS tools (aws-cli, boto3 and what is built on them) drive
kubatch unchanged, pointed at it with ``--endpoint-url`` or ``AWS_ENDPOINT_URL_BATCH``.

A translation layer over kubatch's objects, never a second store: a job submitted through it is a
normal BatchJob, and every request is made against the Kubernetes API server *as* the identity its
access key maps to (impersonation), so Kubernetes RBAC decides what a key may do.

One job per module:

- ``protocol``: AWS Batch's REST-JSON operations (method and path), request and response bodies.
- ``errors``: AWS's error shapes (``ClientException``, ``ServerException``, the authentication
  errors) and how a Kubernetes API error becomes one.
- ``sigv4``: verification of AWS Signature Version 4 (pure).
- ``keys``: access keys as Kubernetes Secrets (pure: the Secret's shape, key generation);
  ``keystore``: reading and managing them on the API server.
- ``impersonation``: a Kubernetes client acting as a key's identity; ``authn``: the front door
  (signature, key, identity).
- ``arns``: ARNs in AWS's format, and names or ARNs wherever AWS accepts either.
- ``jobs``, ``listing``, ``definitions``, ``resources``: pure translation of the job, job
  definition, job queue, scheduling policy and compute environment operations; ``job_ops``,
  ``definition_ops``, ``resource_ops``: those operations against the API server; ``tag_ops``: the
  tag operations.
- ``environments`` (pure) and ``environment_ops``: Create/Update/DeleteComputeEnvironment, with the
  server's defaults for what AWS's request does not carry.
- ``consumable_jobs`` (pure) and ``consumable_job_ops``: ListJobsByConsumableResource (a job's
  consumable resources from its definition revision and overrides).
- ``services`` (pure) and ``service_ops``: the service environment and service job operations
  (ServiceEnvironments, BatchJobs with a serviceJobType); ``quotas`` (pure) and ``quota_ops``: the
  quota share operations (entries of a JobQueue's spec.quotaShares).
- ``server``: the aiohttp application (authentication, dispatch, errors); ``app``: the API
  assembled; ``tls``: its certificate.
"""
