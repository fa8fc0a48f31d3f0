"""Unit tests: pure code and in-process fakes, no engine.

Under `make test` (pytest-xdist, two workers) they run on a worker of their own beside the
engine tests (tests/conftest.py). That worker lowers its own priority (nice 19). This only
reduces its share: the engine's containers sit in other cgroups, where nice does not reach,
so the first ~2 minutes of engine tests still share the CPUs with it.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _yield_the_cpu_to_the_engine_tests() -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.nice(19 - os.nice(0))
