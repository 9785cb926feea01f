"""Pieces every scenario uses: a fresh environment + queue + namespace + definition, CPU windows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from bench.harness import Harness
from bench.probes import CpuWindow


@dataclass
class Setup:
    ce: str
    queue: str
    ns: str
    definition: str


async def setup(h: Harness, base: str, *, nodes: int, cpu: int, vcpus: int = 1) -> Setup:
    tag = uuid.uuid4().hex[:4]
    ce = await h.environment(f"{base}-{tag}", nodes=nodes, cpu=cpu)
    q = await h.queue(f"{base}-{tag}", [ce])
    ns = await h.namespace(base)
    jd = await h.definition(ns, "work", vcpus=vcpus)
    return Setup(ce, q, ns, jd)


def cpu_window(h: Harness) -> CpuWindow:
    w = CpuWindow(h.pids())
    w.start()
    return w
