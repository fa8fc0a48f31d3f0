"""Every bad input is reported with the file, the line and the field an operator must fix.

Pure cases run build_config over an in-memory file tree; the adapter cases (symlink, size,
encoding) use real files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.adapters.files import load_config, load_config_partial, read_desired_dir
from controller.core.config import build_config, build_config_partial
from controller.errors import ConfigError, Problem
from tests.fakes_files import MemoryTree

DESIRED = "/r/desired/app.yaml"
OTHER = "/r/desired/b.yaml"
COMPOSE = "/r/compose/c.yml"

BASE_COMPOSE = """\
services:
  api:
    image: reg/api
    expose: ["8000"]
    x-berth:
      upstream: {name: api_up, port: 8000}
      allowed_tags: '^\\d+\\.\\d+\\.\\d+$'
  web:
    image: nginx
x-berth:
  proxy:
    service: web
    upstreams_file: ../nginx/up.conf
name: app
"""
BASE_DESIRED = """\
project: app
compose: ../compose/c.yml
services:
  api:
    tag: "1.0.0"
"""


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    line: int | None
    field: str
    fragment: str
    desired: str = BASE_DESIRED
    compose: str = BASE_COMPOSE
    extra: dict[str, str] = field(default_factory=dict)


def d(old: str, new: str) -> str:
    assert old in BASE_DESIRED
    return BASE_DESIRED.replace(old, new)


def c(old: str, new: str) -> str:
    assert old in BASE_COMPOSE
    return BASE_COMPOSE.replace(old, new)


CASES = [
    Case(
        "yaml-syntax",
        DESIRED,
        5,
        "",
        "YAML syntax error",
        desired=d('tag: "1.0.0"', 'tag: "1.0.0\n'),
    ),
    Case(
        "yaml-syntax-compose", COMPOSE, 5, "", "YAML syntax error", compose=c('["8000"]', '["8000"')
    ),
    Case("unknown-key", DESIRED, 1, "projekt", "unknown key", desired=d("project:", "projekt:")),
    Case(
        "unknown-service",
        DESIRED,
        6,
        "services.ghost",
        "no service 'ghost'",
        desired=BASE_DESIRED + "  ghost:\n    tag: '1.0.0'\n",
    ),
    Case(
        "missing-compose",
        DESIRED,
        2,
        "compose",
        "does not exist",
        desired=d("../compose/c.yml", "../compose/gone.yml"),
    ),
    Case(
        "missing-compose-in-list",
        DESIRED,
        2,
        "compose[1]",
        "does not exist",
        desired=d("../compose/c.yml", "[../compose/c.yml, ../compose/gone.yml]"),
    ),
    Case(
        "invalid-tag",
        DESIRED,
        5,
        "services.api.tag",
        "invalid tag",
        desired=d('"1.0.0"', '"1.0 final"'),
    ),
    Case(
        "tag-not-allowed",
        DESIRED,
        5,
        "services.api.tag",
        "allowed_tags",
        desired=d('"1.0.0"', "latest"),
    ),
    Case(
        "replicas-negative",
        DESIRED,
        6,
        "services.api.replicas",
        "0-256",
        desired=BASE_DESIRED + "    replicas: -1\n",
    ),
    Case(
        "replicas-word",
        DESIRED,
        6,
        "services.api.replicas",
        "whole number",
        desired=BASE_DESIRED + "    replicas: two\n",
    ),
    Case(
        "replicas-bool",
        DESIRED,
        6,
        "services.api.replicas",
        "whole number",
        desired=BASE_DESIRED + "    replicas: true\n",
    ),
    Case(
        "desired-image",
        DESIRED,
        6,
        "services.api.image",
        "security boundary",
        desired=BASE_DESIRED + "    image: evil/miner\n",
    ),
    Case(
        "desired-ports",
        DESIRED,
        6,
        "services.api.ports",
        "security boundary",
        desired=BASE_DESIRED + "    ports: ['22:22']\n",
    ),
    Case(
        "desired-volumes",
        DESIRED,
        6,
        "services.api.volumes",
        "security boundary",
        desired=BASE_DESIRED + "    volumes: ['/:/host']\n",
    ),
    Case(
        "desired-privileged",
        DESIRED,
        6,
        "services.api.privileged",
        "security boundary",
        desired=BASE_DESIRED + "    privileged: true\n",
    ),
    Case(
        "bad-duration-compose",
        COMPOSE,
        4,
        "services.api.stop_grace_period",
        "invalid duration",
        compose=c(
            '    expose: ["8000"]\n', '    stop_grace_period: 10 parsecs\n    expose: ["8000"]\n'
        ),
    ),
    Case(
        "bad-duration-x-berth",
        COMPOSE,
        7,
        "services.api.x-berth.progress_deadline",
        "invalid duration",
        compose=c("      allowed_tags", "      progress_deadline: soon\n      allowed_tags"),
    ),
    Case(
        "unsupported-key",
        COMPOSE,
        10,
        "services.web.cpu_count",
        "Windows containers",
        compose=c("    image: nginx\n", "    image: nginx\n    cpu_count: 2\n"),
    ),
    Case(
        "network-mode-and-networks",
        COMPOSE,
        10,
        "services.web.network_mode",
        "cannot both be set",
        compose=c(
            "    image: nginx\n", "    image: nginx\n    network_mode: host\n    networks: [a]\n"
        ),
    ),
    Case(
        "deploy-placement",
        COMPOSE,
        11,
        "services.web.deploy.placement",
        "swarm",
        compose=c("    image: nginx\n", "    image: nginx\n    deploy:\n      placement: {}\n"),
    ),
    Case(
        "external-secret",
        COMPOSE,
        17,
        "secrets.db.external",
        "swarm",
        compose=BASE_COMPOSE + "secrets:\n  db:\n    external: true\n",
    ),
    Case(
        "container-name-scaled",
        COMPOSE,
        10,
        "services.web.container_name",
        "held by one container",
        compose=c(
            "    image: nginx\n", "    image: nginx\n    container_name: web\n    scale: 2\n"
        ),
    ),
    Case(
        "unknown-x-berth-key",
        COMPOSE,
        7,
        "services.api.x-berth.stratgy",
        "unknown key",
        compose=c("      allowed_tags", "      stratgy: stop-first\n      allowed_tags"),
    ),
    Case(
        "bad-regex",
        COMPOSE,
        7,
        "services.api.x-berth.allowed_tags",
        "invalid regular expression",
        compose=c("'^\\d+\\.\\d+\\.\\d+$'", "'(unclosed'"),
    ),
    Case(
        "duplicate-upstream",
        COMPOSE,
        11,
        "services.web.x-berth.upstream.name",
        "also used",
        compose=c(
            "    image: nginx\n",
            "    image: nginx\n    expose: [80]\n"
            "    x-berth: {upstream: {name: api_up, port: 80}}\n",
        ),
    ),
    Case(
        "upstreams-outside-stack",
        COMPOSE,
        13,
        "x-berth.proxy.upstreams_file",
        "outside the compose root",
        compose=c("../nginx/up.conf", "../../etc/nginx/up.conf"),
    ),
    Case(
        "proxy-service-missing",
        COMPOSE,
        12,
        "x-berth.proxy.service",
        "not a service",
        compose=c("service: web", "service: nginx"),
    ),
    Case(
        "required-variable-unset",
        COMPOSE,
        3,
        "services.api.image",
        "API_TAG is missing a value: set it",
        compose=c("image: reg/api", "image: reg/api:${API_TAG:?set it}"),
    ),
    Case(
        "bad-dotenv",
        "/r/compose/.env",
        2,
        "",
        "invalid variable name",
        extra={"/r/compose/.env": "OK=1\nNOT OK=2\n"},
    ),
    Case(
        "bad-port",
        COMPOSE,
        10,
        "services.web.ports[0]",
        "invalid",
        compose=c("    image: nginx\n", "    image: nginx\n    ports: ['80:http']\n"),
    ),
    Case(
        "undeclared-volume",
        COMPOSE,
        10,
        "services.web.volumes[0]",
        "not declared",
        compose=c("    image: nginx\n", "    image: nginx\n    volumes: ['data:/d']\n"),
    ),
]


def tree(case: Case) -> dict[str, str]:
    return {DESIRED: case.desired, COMPOSE: case.compose, **case.extra}


def reader(files: dict[str, str]) -> MemoryTree:
    return MemoryTree(files, root="/r", desired="/r/desired")


def test_base_is_valid() -> None:
    files = {DESIRED: BASE_DESIRED, COMPOSE: BASE_COMPOSE}
    config = build_config([(DESIRED, BASE_DESIRED)], environ={}, files=reader(files))
    assert [t.image for t in config.targets] == ["reg/api:1.0.0", "nginx"]
    assert set(config.files) >= {DESIRED, COMPOSE, "/r/compose/.env"}


def test_there_are_enough_cases() -> None:
    assert len({case.id for case in CASES}) >= 20


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case) -> None:
    files = tree(case)
    with pytest.raises(ConfigError) as info:
        build_config([(DESIRED, case.desired)], environ={}, files=reader(files))
    expected = (case.file, case.line, case.field)
    hits = [p for p in info.value.problems if (p.file, p.line, p.field) == expected]
    assert hits, f"want {expected}, got {info.value.problems}"
    assert any(case.fragment in p.message for p in hits), hits


def _two_files(second: str) -> list[Problem]:
    files = {
        DESIRED: BASE_DESIRED,
        OTHER: second,
        COMPOSE: BASE_COMPOSE,
        "/r/compose/d.yml": BASE_COMPOSE,
    }
    with pytest.raises(ConfigError) as info:
        build_config([(DESIRED, BASE_DESIRED), (OTHER, second)], environ={}, files=reader(files))
    return info.value.problems


def test_same_service_in_two_desired_files_names_both() -> None:
    problems = _two_files(BASE_DESIRED)
    mine = [p for p in problems if p.file == DESIRED]
    theirs = [p for p in problems if p.file == OTHER]
    assert (
        mine and mine[0].line == 4 and mine[0].field == "services.api" and OTHER in mine[0].message
    )
    assert theirs and theirs[0].line == 4 and DESIRED in theirs[0].message


def test_same_project_with_other_compose_files() -> None:
    problems = _two_files("project: app\ncompose: ../compose/d.yml\n")
    assert any(p.file == OTHER and p.field == "compose" and DESIRED in p.message for p in problems)


def test_one_invalid_file_does_not_block_another() -> None:
    bad = "project: other\ncompose: ../compose/c.yml\nservices:\n  api: {tag: 'x y'}\n"
    files = {DESIRED: BASE_DESIRED, OTHER: bad, COMPOSE: BASE_COMPOSE}
    partial = build_config_partial(
        [(DESIRED, BASE_DESIRED), (OTHER, bad)], environ={}, files=reader(files)
    )
    assert partial.valid(DESIRED) and not partial.valid(OTHER)
    assert set(partial.config.stacks) == {"app"}
    assert partial.problems[OTHER][0].field == "services.api.tag"


# --- adapter: real files ------------------------------------------------------------------


def _layout(root: Path, desired: str = BASE_DESIRED) -> Path:
    (root / "desired").mkdir()
    (root / "compose").mkdir()
    (root / "compose" / "c.yml").write_text(BASE_COMPOSE)
    (root / "desired" / "app.yaml").write_text(desired)
    return root / "desired"


def test_adapter_loads(tmp_path: Path) -> None:
    config = load_config(str(_layout(tmp_path)), {}, root=None)
    assert config.targets[0].image == "reg/api:1.0.0"


def test_symlink_leaving_desired(tmp_path: Path) -> None:
    ddir = _layout(tmp_path)
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(BASE_DESIRED)
    os.symlink(outside, ddir / "evil.yaml")
    with pytest.raises(ConfigError) as info:
        read_desired_dir(str(ddir))
    [problem] = info.value.problems
    assert problem.file == str(ddir / "evil.yaml") and "symlink" in problem.message
    os.symlink(ddir / "app.yaml", ddir / "alias.yml")  # inside desired/: fine
    partial = load_config_partial(str(ddir), {}, root=None)
    assert not partial.valid(str(ddir / "evil.yaml"))
    assert partial.valid(str(ddir / "app.yaml")) is False  # same service twice via the alias


def test_file_over_one_mib(tmp_path: Path) -> None:
    ddir = _layout(tmp_path)
    (ddir / "big.yaml").write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError) as info:
        read_desired_dir(str(ddir))
    assert info.value.problems[0].file == str(ddir / "big.yaml")
    assert "larger than" in info.value.problems[0].message
    partial = load_config_partial(str(ddir), {}, root=None)
    assert partial.valid(str(ddir / "app.yaml")) and not partial.valid(str(ddir / "big.yaml"))


def test_not_utf8(tmp_path: Path) -> None:
    ddir = _layout(tmp_path)
    (ddir / "latin.yaml").write_bytes(b"project: app\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        read_desired_dir(str(ddir))
    problem = info.value.problems[0]
    assert (problem.file, problem.line) == (str(ddir / "latin.yaml"), 2)
    assert "UTF-8" in problem.message


def test_invalid_file_keeps_last_good_state_of_its_project() -> None:
    from controller.core.config import keep_last_good

    files = {DESIRED: BASE_DESIRED, COMPOSE: BASE_COMPOSE}
    good = build_config([(DESIRED, BASE_DESIRED)], environ={}, files=reader(files))
    broken = d('"1.0.0"', '"2.0.0 oops"')
    files[DESIRED] = broken
    partial = build_config_partial([(DESIRED, broken)], environ={}, files=reader(files))
    assert not partial.valid(DESIRED) and partial.config.targets == ()
    kept = keep_last_good(partial, good)
    assert [t.image for t in kept.targets] == ["reg/api:1.0.0", "nginx"]
    fixed = d('"1.0.0"', '"2.0.0"')
    files[DESIRED] = fixed
    partial = build_config_partial([(DESIRED, fixed)], environ={}, files=reader(files))
    assert keep_last_good(partial, good).targets[0].image == "reg/api:2.0.0"
