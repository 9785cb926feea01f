"""Shared pytest configuration: hypothesis profiles, and a guard that xdist's test groups hold."""

from __future__ import annotations

import os
from importlib.metadata import version

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _release(package: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version(package).split(".")[:3] if part.isdigit())


def pytest_configure(config: pytest.Config) -> None:
    """Tests that restart the shared operator must not run beside each other, and `--dist loadgroup`
    keeps each ``xdist_group`` on one worker by suffixing test ids with the group. pytest 9.2 derives
    ids from a structured id that pytest-xdist 3.8 does not set, so the groups silently spread over
    the workers and those tests fail at random: refuse that pair (pyproject.toml pins pytest)."""
    grouped = getattr(config.option, "dist", None) == "loadgroup" and not os.environ.get("PYTEST_XDIST_WORKER")
    if grouped and _release("pytest") >= (9, 2) and _release("pytest-xdist") <= (3, 8, 0):
        raise pytest.UsageError(
            f"pytest {version('pytest')} with pytest-xdist {version('pytest-xdist')}: --dist loadgroup "
            "does not keep xdist_group tests on one worker; install pytest<9.2 (pip install -e '.[dev]')"
        )
