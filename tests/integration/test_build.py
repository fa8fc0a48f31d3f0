"""Building on the host (compose `build:`) against the real engine: the ImageBuilder
contract (DockerBuilder and the FakeBuilder the executor's unit tests use), what the real
builder sends, and `berth apply` of a stack whose service only builds."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from controller.adapters.docker_build import LABEL_CONTEXT_HASH, DockerBuilder
from controller.adapters.docker_runtime import DockerRuntime
from controller.core.model import BuildSpec
from controller.errors import ImageBuildError
from tests.fakes import FakeBuilder, FakeRuntime
from tests.support.berth import berth
from tests.support.images import healthcheck

pytestmark = [pytest.mark.docker]

BASE = "berth-test/app:it-good"
DOCKERFILE = "FROM " + BASE + '\nARG GREETING=none\nRUN echo "$GREETING" > /greeting\n'


@pytest.fixture()
def images(docker_client: Any) -> Iterator[list[str]]:
    """Repositories a test builds, removed afterwards (with every tag)."""
    made: list[str] = []
    yield made
    for repo in made:
        for img in docker_client.images.list(name=repo):
            for tag in img.tags:
                with contextlib.suppress(docker.errors.APIError):
                    docker_client.images.remove(tag, force=True)


def _context(root: Path, dockerfile: str = DOCKERFILE, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(params=["real", "fake"])
def builder(request: Any, app_image: Callable[..., str]) -> Iterator[tuple[Any, Any]]:
    if request.param == "real":
        app_image("it-good")
        rt = DockerRuntime()
        yield DockerBuilder(lambda: rt.client), rt
        rt.close()
    else:
        frt = FakeRuntime()
        yield FakeBuilder(frt, failing={"/fails": "boom-marker"}), frt


def test_contract_build_then_same_context_is_tagged(
    builder: tuple[Any, Any], tmp_path: Path, images: list[str]
) -> None:
    b, rt = builder
    repo = f"berth-build-{uuid.uuid4().hex[:8]}"
    images.append(repo)
    spec = BuildSpec(context=str(_context(tmp_path / "ctx")), args=(("GREETING", "hi"),))
    lines: list[str] = []
    first = b.build(spec, f"{repo}:1", on_line=lines.append)
    assert not first.cached and rt.image_present(f"{repo}:1") and lines
    second = b.build(spec, f"{repo}:2", on_line=lines.append)
    assert second.cached and second.image_id == first.image_id
    assert second.context_hash == first.context_hash and rt.image_present(f"{repo}:2")
    other = b.build(
        BuildSpec(context=spec.context, args=(("GREETING", "other"),)),
        f"{repo}:3",
        on_line=lines.append,
    )
    assert not other.cached and other.context_hash != first.context_hash


def test_contract_failed_build_raises_with_the_log_tail(
    builder: tuple[Any, Any], tmp_path: Path, images: list[str]
) -> None:
    b, rt = builder
    repo = f"berth-build-{uuid.uuid4().hex[:8]}"
    images.append(repo)
    ctx = tmp_path / "ctx"
    _context(ctx, f"FROM {BASE}\nRUN echo boom-marker && false\n")
    path = str(ctx) if isinstance(b, DockerBuilder) else "/fails"
    with pytest.raises(ImageBuildError) as exc:
        b.build(BuildSpec(context=path), f"{repo}:1", on_line=lambda _: None)
    assert "boom-marker" in str(exc.value) and "non-zero code" in str(exc.value)
    assert not rt.image_present(f"{repo}:1")


def _files_in(docker_client: Any, ref: str, directory: str) -> str:
    out: bytes = docker_client.containers.run(ref, ["find", directory], remove=True, entrypoint=[])
    return out.decode()


def test_real_build_leaves_out_desired_and_dockerignored_files_and_hashes_contents(
    docker_client: Any, app_image: Callable[..., str], tmp_path: Path, images: list[str]
) -> None:
    app_image("it-good")
    repo = f"berth-build-{uuid.uuid4().hex[:8]}"
    images.append(repo)
    ctx = _context(
        tmp_path / "ctx",
        f"FROM {BASE}\nCOPY . /ctx\n",
        **{
            "app.txt": "v1",
            "desired/stack.yaml": "x",
            "secret.env": "K=V",
            ".dockerignore": "*.env\n",
        },
    )
    rt = DockerRuntime()
    b = DockerBuilder(lambda: rt.client)
    spec = BuildSpec(context=str(ctx), exclude=("desired",))
    first = b.build(spec, f"{repo}:1", on_line=lambda _: None)
    listing = _files_in(docker_client, f"{repo}:1", "/ctx")
    assert "/ctx/app.txt" in listing and "desired" not in listing and "secret.env" not in listing
    (ctx / "desired" / "stack.yaml").write_text("changed")  # not sent: same hash
    assert b.build(spec, f"{repo}:2", on_line=lambda _: None).cached
    (ctx / "app.txt").write_text("v2")  # sent: a new build
    third = b.build(spec, f"{repo}:3", on_line=lambda _: None)
    assert not third.cached and third.context_hash != first.context_hash
    labels = docker_client.images.get(f"{repo}:3").labels
    assert labels[LABEL_CONTEXT_HASH] == third.context_hash
    rt.close()


def _compose(project: str, dockerfile_dir: str = "./app") -> dict[str, Any]:
    return {
        "name": project,
        "services": {
            "api": {
                "build": {"context": dockerfile_dir, "args": {"GREETING": "${GREETING:-hello}"}},
                "init": True,
                "healthcheck": {"test": healthcheck(), "interval": "1s", "retries": 3},
                "x-berth": {"health": {"path": "/health", "port": 8000, "interval": "100ms"}},
            }
        },
    }


@pytest.mark.slow
def test_apply_builds_then_a_failed_build_touches_nothing_and_is_quarantined(
    docker_client: Any,
    app_image: Callable[..., str],
    tmp_stack: Any,
    project: str,
    images: list[str],
) -> None:
    app_image("it-good")
    images.append(f"{project}-api")
    s = tmp_stack(
        _compose(project),
        {"api": {"tag": "1"}},
        files={"compose/app/Dockerfile": DOCKERFILE},
    )
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    assert "build-log" in r.err and f"building {project}-api:1" in r.err, r.err
    (c,) = docker_client.containers.list(filters={"label": f"com.docker.compose.project={project}"})
    assert c.image.tags == [f"{project}-api:1"]
    assert c.exec_run(["cat", "/greeting"]).output.decode().strip() == "hello"
    # a broken Dockerfile for tag 2: the rollout fails with the log's tail, v1 keeps running
    (s.root / "compose" / "app" / "Dockerfile").write_text(
        f"FROM {BASE}\nRUN echo tail-marker-42 && exit 3\n"
    )
    s.desired_file.write_text(s.desired_file.read_text().replace('"1"', '"2"'))
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 3, r.out + r.err
    assert "build failed" in r.out + r.err and "tail-marker-42" in r.out + r.err
    (c2,) = docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={project}"}
    )
    assert c2.id == c.id and c2.status == "running"
    hist = berth(s.desired_dir, s.state_dir, "history", "api")
    assert "tail-marker-42" in hist.out or "build failed" in hist.out, hist.out
    st = berth(s.desired_dir, s.state_dir, "status")
    assert "quarantined" in st.out.lower() or "!" in st.out, st.out
    r = berth(s.desired_dir, s.state_dir, "apply")  # not retried in a loop
    assert "building" not in r.err, r.err
