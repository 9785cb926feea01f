"""The kopf operator: settings, login, start-up and clean-up of the runtime, health probes.

BatchJobs and Pods are watched by the runtime's own informers (one list+watch each, no per-object
kopf workers, annotations or finalizers: see design.md); kopf runs the process, serves admission
webhooks and health probes. The validating webhook is served when KUBATCH_WEBHOOK_PORT is set (the
environment variables are described in `kubatch.controllers.admission`). Service workload types
declared by configuration (``KUBATCH_SERVICE_WORKLOAD_TYPES``: a file, `kubatch.core.workload_types`)
are read and checked when the module loads: an invalid file stops the process with the reason.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import kopf

from kubatch.cluster.client import Kube
from kubatch.controllers import admission
from kubatch.core.workload_types import ENV_VAR, WorkloadTypeConfigError, describe, parse_workload_types, register
from kubatch.runtime.app import Options, Runtime

log = logging.getLogger(__name__)



def configure_workload_types(env: os._Environ[str] | dict[str, str]) -> None:
    """Read the service workload types named by KUBATCH_SERVICE_WORKLOAD_TYPES (a file) and make
    them known; SystemExit with the reason when the file cannot be read or is invalid."""
    path = env.get(ENV_VAR, "")
    if not path:
        return
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SystemExit(f"kubatch: {ENV_VAR}: cannot read {path}: {e}") from None
    try:
        types = parse_workload_types(text, path)
    except WorkloadTypeConfigError as e:
        raise SystemExit(f"kubatch: invalid service workload types ({ENV_VAR}): {e}") from None
    register(types)
    log.info("service workload types from %s: %s", path, describe(types))


configure_workload_types(os.environ)
WEBHOOK = admission.WebhookOptions.from_env()
if WEBHOOK is not None:
    admission.register()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # No kopf resource handlers: nothing to scan, and scanning CRDs would need wider RBAC.
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING
    settings.posting.loggers = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.persistence.finalizer = "kubatch.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubatch.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kubatch.dev")
    options = Options.from_env()
    kube = await Kube.connect(options.kubeconfig)
    runtime = Runtime(kube, options)
    memo.runtime = runtime
    await runtime.start()
    if WEBHOOK is not None:
        await admission.setup(settings, memo, kube, runtime.view, runtime.synced, WEBHOOK, runtime.metrics)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.events.drain()
        await runtime.stop()


@kopf.on.probe(id="synced")
async def synced(memo: kopf.Memo, **_: Any) -> bool:
    runtime: Runtime | None = memo.get("runtime")
    return bool(runtime and runtime.synced.is_set())


@kopf.on.probe(id="leader")
async def leader(memo: kopf.Memo, **_: Any) -> bool:
    runtime: Runtime | None = memo.get("runtime")
    return bool(runtime and runtime.is_leader)
