"""Why kubatch talks to the API server with its own thin aiohttp client (`kubatch.cluster.client`)
rather than kubernetes_asyncio's generated API classes: the same requests, timed side by side.

Runs against the local cluster (`make cluster-up`): N pod creates, N gets and one list of N pods
with each client, same concurrency. Prints a table, writes bench/results/client_compare.json.
kubernetes_asyncio is still used, for what it does well: parsing kubeconfigs and credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
import uuid
from pathlib import Path
from typing import Any

from kubatch.cluster.client import Kube
from kubatch.devcluster.cluster import LocalCluster

RESULTS = Path(__file__).parent / "results"


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "client"}},
        "spec": {"nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }


async def timed(label: str, n: int, coros: list[Any], concurrency: int = 32) -> tuple[str, float]:
    sem = asyncio.Semaphore(concurrency)

    async def one(c: Any) -> None:
        async with sem:
            await c

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in coros))
    return label, time.perf_counter() - start


async def run(n: int) -> dict[str, Any]:
    info = LocalCluster().up()
    ns = f"bench-client-{uuid.uuid4().hex[:6]}"
    kube = await Kube.connect(info.kubeconfig)
    await kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
    from kubernetes_asyncio import client as kclient
    from kubernetes_asyncio import config as kconfig

    await kconfig.load_kube_config(config_file=info.kubeconfig)
    api_client = kclient.ApiClient()
    core = kclient.CoreV1Api(api_client)
    rows: dict[str, float] = {}
    try:
        for _ in range(50):  # wait for the default ServiceAccount (pod admission needs it)
            try:
                await kube.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default")
                break
            except Exception:
                await asyncio.sleep(0.2)
        base = f"/api/v1/namespaces/{ns}/pods"
        label, t = await timed("create (kubatch client)", n, [kube.create(base, pod(f"a-{i}")) for i in range(n)])
        rows[label] = t
        label, t = await timed(
            "create (kubernetes_asyncio)", n, [core.create_namespaced_pod(ns, pod(f"b-{i}")) for i in range(n)]  # type: ignore[arg-type]
        )
        rows[label] = t
        label, t = await timed("get (kubatch client)", n, [kube.get(f"{base}/a-{i}") for i in range(n)])
        rows[label] = t
        label, t = await timed(
            "get (kubernetes_asyncio)", n, [core.read_namespaced_pod(f"a-{i}", ns) for i in range(n)]
        )
        rows[label] = t
        start = time.perf_counter()
        for _ in range(5):
            await kube.list_all(base)
        rows[f"list {2 * n} pods x5 (kubatch client)"] = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(5):
            await core.list_namespaced_pod(ns)
        rows[f"list {2 * n} pods x5 (kubernetes_asyncio)"] = time.perf_counter() - start
    finally:
        await kube.delete(f"/api/v1/namespaces/{ns}")
        await kube.close()
        await api_client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args()
    rows = asyncio.run(run(args.n))
    width = max(len(k) for k in rows)
    print(f"{'operation':<{width}}  seconds")
    for k, v in rows.items():
        print(f"{k:<{width}}  {v:7.3f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "client_compare.json").write_text(
        json.dumps(
            {"benchmark": "client_compare", "n": args.n, "python": platform.python_version(), "seconds": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
