"""Fixtures for tests on a real multi-node Docker Swarm (tests/support/swarm.py).

- `swarm_shape`  module-scoped (managers, workers), default (1, 2); a module overrides it
                 by defining its own `swarm_shape` fixture
- `swarm_heartbeat` module-scoped, default None (Swarm's 5 s); a module overrides it
- `swarm`        module-scoped: the swarm is brought up once per module (a few seconds once
                 the node image is cached) and removed after it, whatever happened
                 Every node sees `swarm.shared` (a host directory) at the same path
- `swarm_registry_storage`  session-scoped: the host directory holding every test swarm's
                 registry blobs, so an image pushed into one module's swarm is only checked,
                 not uploaded again, in the next (the nginx image costs ~20 s to push)
- `swarm_app`    module-scoped: `berth-test/app:1.0.0` pushed into the swarm's registry;
                 the ref the nodes pull (`REGISTRY_IP:5000/berth-test/app:1.0.0`)

Bring-up times are printed in the terminal summary (tests/conftest.py), so CI logs show
the harness's cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.images import ensure_app_image
from tests.support.swarm import BRING_UPS, Swarm, remove_stale_swarms, start_swarm


@pytest.fixture(scope="module")
def swarm_shape() -> tuple[int, int]:
    return (1, 2)


@pytest.fixture(scope="module")
def swarm_heartbeat() -> float | None:
    """The dispatcher heartbeat in seconds; None: Swarm's default (5 s)."""
    return None


@pytest.fixture(scope="session")
def swarm_registry_storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Only the blobs are shared: each swarm has its own registry container and nodes, and
    every module pushes what it uses itself (a push of something already there is cheap)."""
    return str(tmp_path_factory.mktemp("swarm-registry"))


@pytest.fixture(scope="module")
def swarm(
    docker_client: Any,
    swarm_shape: tuple[int, int],
    swarm_heartbeat: float | None,
    swarm_registry_storage: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Swarm]:
    remove_stale_swarms(docker_client)
    managers, workers = swarm_shape
    shared = str(tmp_path_factory.mktemp("swarm-shared"))
    s = start_swarm(
        managers=managers,
        workers=workers,
        client=docker_client,
        shared=shared,
        heartbeat=swarm_heartbeat,
        registry_storage=swarm_registry_storage,
    )
    s.shared = shared
    try:
        BRING_UPS.append(
            {
                "module": request.module.__name__,
                "shape": f"{managers}+{workers}",
                "timings": s.timings,
                "rss": s.rss_bytes(),
            }
        )
        yield s
    finally:
        s.teardown()


@pytest.fixture(scope="module")
def swarm_app(swarm: Swarm, docker_client: Any) -> str:
    return swarm.push(ensure_app_image("1.0.0", client=docker_client))
