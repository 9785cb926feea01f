"""Types and small helpers shared by the integration tests."""

from __future__ import annotations

import subprocess
from typing import Protocol


class Kubectl(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


class NodeFactory(Protocol):
    def __call__(
        self,
        *,
        cpu: str | int = ...,
        memory: str = ...,
        gpus: int = ...,
        labels: dict[str, str] | None = ...,
        taints: list[dict[str, str]] | None = ...,
    ) -> str: ...
