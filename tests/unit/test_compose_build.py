"""Compose `build:` -> BuildSpec: what Berth builds, and what it refuses (with file, line,
field). The Engine API side is tests/integration/test_build.py."""

from __future__ import annotations

import pytest

from controller.core.compose import load_stack
from controller.core.model import BuildSpec, StackSpec
from controller.errors import ConfigError
from tests.fakes_files import MemoryTree

FILE = "/srv/stack/compose/c.yml"
DOCKERFILE = {"/srv/stack/compose/app/Dockerfile": "FROM scratch\n"}


def load(
    text: str,
    *,
    extra: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    desired: str = "/srv/stack/desired",
) -> StackSpec:
    tree = MemoryTree({**DOCKERFILE, **(extra or {})}, root="/srv/stack", desired=desired)
    return load_stack(project="p", files=[(FILE, text)], environ=env or {}, sources=tree)


def build_of(text: str, service: str = "s", **kw: object) -> BuildSpec:
    spec = load(text, **kw).services[service]  # type: ignore[arg-type]
    assert spec.build is not None
    return spec.build


def errors(text: str, **kw: object) -> str:
    with pytest.raises(ConfigError) as exc:
        load(text, **kw)  # type: ignore[arg-type]
    return str(exc.value)


def test_short_syntax_builds_project_service_image() -> None:
    stack = load("services:\n  s:\n    build: ./app\n")
    s = stack.services["s"]
    assert s.image == "p-s"  # compose v2's {project}-{service}
    assert s.build == BuildSpec(context="/srv/stack/compose/app")


def test_image_given_is_the_name_and_is_pulled_first() -> None:
    stack = load("services:\n  s:\n    image: reg.example/api\n    build: ./app\n")
    assert stack.services["s"].image == "reg.example/api"
    assert stack.services["s"].build is not None and stack.services["s"].build.pull_first


def test_long_syntax_options() -> None:
    b = build_of(
        "services:\n  s:\n    build:\n      context: app\n      dockerfile: Dockerfile\n"
        "      target: prod\n      args:\n        A: '1'\n        B: two\n"
        "      labels: [team=core]\n      cache_from: [p-s:1]\n      network: host\n"
        "      shm_size: 64m\n      extra_hosts: ['db:10.0.0.2']\n      no_cache: true\n"
        "      pull: 'true'\n      x-note: ignored\n"
    )
    assert b.target == "prod" and b.args == (("A", "1"), ("B", "two"))
    assert b.labels == (("team", "core"),) and b.cache_from == ("p-s:1",)
    assert b.network == "host" and b.shm_size == 64 * 1024**2
    assert b.extra_hosts == (("db", "10.0.0.2"),) and b.no_cache and b.pull


def test_bare_arg_takes_the_project_environment_or_is_left_out() -> None:
    text = "services:\n  s:\n    build:\n      context: app\n      args: [SET, UNSET, E=]\n"
    b = build_of(text, env={"SET": "from-env"})
    assert b.args == (("SET", "from-env"), ("E", ""))


def test_args_are_interpolated() -> None:
    text = "services:\n  s:\n    build:\n      context: app\n      args:\n        V: ${VER:-9}\n"
    assert build_of(text).args == (("V", "9"),)


def test_dockerfile_inline_needs_no_file() -> None:
    b = build_of(
        "services:\n  s:\n    build:\n      context: empty\n"
        "      dockerfile_inline: |\n        FROM scratch\n",
        extra={"/srv/stack/compose/empty/.keep": ""},
    )
    assert b.dockerfile_inline == "FROM scratch\n"


def test_missing_dockerfile_is_refused_with_its_line() -> None:
    text = "services:\n  s:\n    build:\n      context: app\n      dockerfile: Nope\n"
    msg = errors(text)
    assert "c.yml:5" in msg and "services.s.build.dockerfile" in msg and "no Dockerfile" in msg


@pytest.mark.parametrize(
    "context",
    ["/etc", "../../..", "../desired", "https://github.com/x/y.git", "git@github.com:x/y"],
)
def test_context_outside_the_root_or_remote_is_refused(context: str) -> None:
    msg = errors(f"services:\n  s:\n    build:\n      context: {context!r}\n")
    assert "services.s.build.context" in msg


def test_desired_inside_the_context_is_never_sent() -> None:
    b = build_of(
        "services:\n  s:\n    build: ..\n",
        extra={"/srv/stack/Dockerfile": "FROM scratch\n"},
    )
    assert b.context == "/srv/stack" and b.exclude == ("desired",)


@pytest.mark.parametrize("key", ["ssh", "secrets", "additional_contexts", "platforms", "tags"])
def test_buildkit_keys_are_refused_by_name(key: str) -> None:
    msg = errors(f"services:\n  s:\n    build:\n      context: app\n      {key}: [x]\n")
    assert f"services.s.build.{key}" in msg


def test_unknown_build_key_is_refused() -> None:
    assert "services.s.build.contxt" in errors("services:\n  s:\n    build:\n      contxt: app\n")


@pytest.mark.parametrize(
    "value", ["[1, 2]", "{context: [a]}", "{context: app, args: 5}", "{context: app, shm_size: x}"]
)
def test_bad_shapes_are_errors_not_crashes(value: str) -> None:
    assert "services.s.build" in errors(f"services:\n  s:\n    build: {value}\n")


def test_without_image_or_build_the_message_names_both() -> None:
    assert "needs 'image' or 'build'" in errors("services:\n  s:\n    command: x\n")


def test_build_does_not_change_the_revision() -> None:
    """The tag names the build: a Dockerfile edit without a new tag redeploys nothing."""
    from controller.core.model import revision_of

    a = load("services:\n  s:\n    build: ./app\n").services["s"]
    b = load("services:\n  s:\n    build:\n      context: app\n      target: x\n").services["s"]
    assert revision_of("p-s:1", a) == revision_of("p-s:1", b)


def test_a_dockerignore_symlinked_into_desired_is_refused(tmp_path: object) -> None:
    """The adapter refuses it before any engine call: desired/ must not choose the files."""
    from pathlib import Path

    from controller.adapters.docker_build import DockerBuilder
    from controller.errors import ImageBuildError

    root = Path(str(tmp_path))
    (root / "desired").mkdir()
    (root / "desired" / "ignore").write_text("*\n")
    (root / "Dockerfile").write_text("FROM scratch\n")
    (root / ".dockerignore").symlink_to(root / "desired" / "ignore")

    def no_engine() -> object:
        raise AssertionError("the engine must not be asked")

    spec = BuildSpec(context=str(root), exclude=("desired",))
    with pytest.raises(ImageBuildError, match="outside what the build may read"):
        DockerBuilder(no_engine).build(spec, "x:1", on_line=lambda _: None)
