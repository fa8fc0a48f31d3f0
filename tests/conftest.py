"""Shared fixtures.

Docker is not optional: CI guarantees an engine (scripts/ensure-docker.sh), so a test that
asks for `docker_client` ERRORS when the engine is unreachable instead of skipping, and a
broken CI machine cannot pass as a green run.

- `docker_client`  session-scoped `docker.DockerClient`
- `app_image`      factory: `app_image("2.0.0", mode="crash", port=8000) -> "berth-test/app:2.0.0"`
- `project`        a unique compose project name (`bt` + 6 random chars); everything labelled
                   with it (containers, networks, volumes) is force-removed after the test
- `tmp_stack`      factory writing a compose file and a desired/ dir under tmp_path
"""

from __future__ import annotations

import functools
import json
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import pytest

from tests.support.cleanup import remove_project
from tests.support.images import ensure_app_image
from tests.support.swarm import BRING_UPS

PROJECT_LABEL = "com.docker.compose.project"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Two work units for `pytest -n 2` (the Makefile): the unit tests, which never touch
    the engine, on one worker; every other test on the other worker, in collection order
    and one at a time, as without xdist: they share one engine, its networks and ports, and
    the machine's timing. (xdist's own `--dist loadgroup` does not group on pytest 9: it
    renames `item._nodeid`, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class UnitBesideEngine(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return "unit" if nodeid.startswith("tests/unit/") else "engine"

    return UnitBesideEngine(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints the summary
        workeroutput["swarm_bring_ups"] = json.dumps(BRING_UPS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    BRING_UPS.extend(json.loads(getattr(node, "workeroutput", {}).get("swarm_bring_ups", "[]")))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not BRING_UPS:
        return
    terminalreporter.section("test swarm bring-up")
    for b in BRING_UPS:
        t = b["timings"]
        terminalreporter.write_line(
            f"{b['module']}: {b['shape']} nodes up in {t['bring_up']:.1f} s "
            f"(engines {t['engines']:.1f} s, swarm {t['swarm']:.1f} s; "
            f"node image check/build {t['node_image']:.1f} s), RSS {b['rss'] / 2**20:.0f} MiB"
        )


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # any failure here means the same thing: no engine
        pytest.fail(
            "Docker engine not reachable "
            f"({type(exc).__name__}: {exc}). Integration tests need a real engine: "
            "run `bash scripts/ensure-docker.sh` (as root) or set DOCKER_HOST.",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A private registry with TLS and htpasswd users (tests/support/registry.py), trusted
    by the engine through certs.d; one per session (tests use their own repositories)."""
    from tests.support.registry import forget_trust, start_registry

    server = start_registry(tmp_path_factory.mktemp("registry"), docker_client)
    yield server
    server.stop()
    forget_trust(server)


AppImage = Callable[..., str]


@pytest.fixture()
def app_image(docker_client: Any) -> AppImage:
    """Factory: `app_image(tag, *, mode="good", port=8000)` builds (or reuses) the image."""

    def build(tag: str, *, mode: str = "good", port: int = 8000) -> str:
        return ensure_app_image(tag, mode=mode, port=port, client=docker_client)

    return build


def _random_project() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "bt" + "".join(secrets.choice(alphabet) for _ in range(6))


@functools.cache
def _cleanup_client() -> Any | None:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception:  # no engine: nothing can have been created
        return None
    return client


@pytest.fixture()
def project() -> Iterator[str]:
    """A unique compose project name; its containers, networks and volumes go afterwards.

    Needs no engine itself, so Docker-free tests (e.g. `berth validate`) may use it and
    `tmp_stack`; when an engine is reachable, the cleanup runs whether or not the test
    used `docker_client` (a `berth` subprocess creates containers on its own).
    """
    name = _random_project()
    yield name
    client = _cleanup_client()
    if client is not None:
        remove_project(client, name)


@dataclass(frozen=True)
class StackPaths:
    """Where `tmp_stack` wrote a stack: pass `desired_dir` to `berth --desired`."""

    root: Path
    project: str
    compose_file: Path
    desired_dir: Path
    desired_file: Path
    state_dir: Path


class TmpStack(Protocol):
    def __call__(
        self,
        compose: Mapping[str, Any] | str,
        desired: Mapping[str, Any] | str | None = None,
        *,
        name: str = "stack",
        files: Mapping[str, str] | None = None,
    ) -> StackPaths: ...


def _dump(data: Mapping[str, Any] | str) -> str:
    if isinstance(data, str):
        return data
    # JSON is YAML: exact, no library quirks, and readable enough in a failure message.
    return json.dumps(data, indent=2) + "\n"


@pytest.fixture()
def tmp_stack(tmp_path: Path, project: str) -> TmpStack:
    """Factory writing `compose/docker-compose.yml` and `desired/<name>.yaml` under tmp_path.

    `desired` given as a mapping gets `project` (the test's unique project) and `compose`
    (the relative path to the compose file) filled in when it lacks them; a mapping without
    a `services` key is taken to BE the services mapping (`{"api": {"tag": "1.0.0"}}`).
    `desired=None` writes a desired file naming no service. `files` are extra files
    (path relative to tmp_path -> text), e.g. `{"nginx/upstreams.conf": ""}`.
    """

    def write(
        compose: Mapping[str, Any] | str,
        desired: Mapping[str, Any] | str | None = None,
        *,
        name: str = "stack",
        files: Mapping[str, str] | None = None,
    ) -> StackPaths:
        compose_file = tmp_path / "compose" / "docker-compose.yml"
        desired_dir = tmp_path / "desired"
        desired_file = desired_dir / f"{name}.yaml"
        compose_file.parent.mkdir(parents=True, exist_ok=True)
        desired_dir.mkdir(parents=True, exist_ok=True)
        if not isinstance(compose, str) and "name" not in compose:
            compose = {"name": project, **compose}  # the compose file chooses the project
        compose_file.write_text(_dump(compose))
        doc: Mapping[str, Any] | str
        if isinstance(desired, str):
            doc = desired
        else:
            given = dict(desired or {})
            if "services" not in given and not {"project", "compose"} & given.keys():
                given = {"services": given}
            given.setdefault("project", project)
            given.setdefault("compose", "../compose/docker-compose.yml")
            given.setdefault("services", {})
            doc = given
        desired_file.write_text(_dump(doc))
        for rel, text in (files or {}).items():
            target = tmp_path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        state_dir = tmp_path / "state"
        state_dir.mkdir(exist_ok=True)
        return StackPaths(
            root=tmp_path,
            project=project,
            compose_file=compose_file,
            desired_dir=desired_dir,
            desired_file=desired_file,
            state_dir=state_dir,
        )

    return write
