"""The compose loader: extends, include, profiles, x-* extensions and the project name,
as `docker compose` (compose-go's loader) applies them, and hostile input to each."""

from __future__ import annotations

import time
from typing import Any

import pytest

from controller.core.compose import load_stack
from controller.core.compose.mount_sources import host_mounts
from controller.core.model import StackSpec
from controller.errors import ConfigError, Problem
from tests.fakes_files import MemoryTree

ROOT = "/srv/stack"
DIR = f"{ROOT}/compose"
FILE = f"{DIR}/c.yml"


class SpyTree(MemoryTree):
    """Records every path read, so a test can prove a refused file was never opened."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.reads: list[str] = []

    def read_text(self, path: str) -> str:
        self.reads.append(path)
        return super().read_text(path)


def tree(files: dict[str, str] | None = None, links: dict[str, str] | None = None) -> SpyTree:
    return SpyTree(files or {}, root=ROOT, desired=f"{ROOT}/desired", links=links)


def load(
    text: str,
    files: dict[str, str] | None = None,
    *,
    env: dict[str, str] | None = None,
    project: str | None = "p",
    links: dict[str, str] | None = None,
    more: list[tuple[str, str]] | None = None,
    sources: SpyTree | None = None,
) -> StackSpec:
    sources = sources or tree(files, links)
    return load_stack(
        project=project, files=[(FILE, text), *(more or [])], environ=env or {}, sources=sources
    )


def problems(text: str, files: dict[str, str] | None = None, **kw: Any) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(text, files, **kw)
    return list(info.value.problems)


def one(text: str, files: dict[str, str] | None = None, **kw: Any) -> Problem:
    found = problems(text, files, **kw)
    assert len(found) == 1, found
    return found[0]


def env_of(stack: StackSpec, service: str) -> list[str]:
    return list(stack.services[service].create.get("Env", []))


# --- extends ---------------------------------------------------------------------------


def test_extends_same_file_short_and_long_form() -> None:
    stack = load(
        "services:\n"
        "  base: {image: img, environment: {A: '1', B: '2'}, command: [old], ports: ['80']}\n"
        "  short: {extends: base, environment: {B: '3'}}\n"
        "  long:\n"
        "    extends: {service: base}\n"
        "    command: [new]\n"
        "    ports: ['80', '81']\n"
    )
    assert stack.services["short"].image == "img"
    assert sorted(env_of(stack, "short")) == ["A=1", "B=3"]
    long = stack.services["long"].create
    assert long["Cmd"] == ["new"]  # sequences like command are replaced whole
    assert set(long["ExposedPorts"]) == {"80/tcp", "81/tcp"}  # ports appended, no duplicate


def test_extends_merges_depends_on_labels_and_volumes_like_compose() -> None:
    stack = load(
        "services:\n"
        "  db: {image: db}\n"
        "  cache: {image: cache}\n"
        "  base:\n"
        "    image: img\n"
        "    depends_on: [db]\n"
        "    labels: {a: '1'}\n"
        "    volumes: ['/srv/stack/x:/data', '/srv/stack/y:/logs']\n"
        "  web:\n"
        "    extends: base\n"
        "    depends_on: {cache: {condition: service_started}}\n"
        "    labels: [b=2]\n"
        "    volumes: ['/srv/stack/z:/data']\n"
    )
    web = stack.services["web"]
    assert sorted(d.service for d in web.depends_on) == ["cache", "db"]  # inherited too
    assert web.create["Labels"] == {"a": "1", "b": "2"}
    mounts = {m["Target"]: m["Source"] for m in host_mounts(web.create["HostConfig"])}
    assert mounts == {"/data": "/srv/stack/z", "/logs": "/srv/stack/y"}


def test_extends_reset_removes_an_inherited_key() -> None:
    stack = load(
        "services:\n"
        "  base: {image: img, command: [x]}\n"
        "  web:\n    extends: base\n    command: !reset null\n"
    )
    assert "Cmd" not in stack.services["web"].create


def test_extends_other_file_resolves_its_relative_paths_in_its_directory() -> None:
    base = (
        "services:\n"
        "  web:\n"
        "    image: img\n"
        "    volumes: ['./data:/data', {type: bind, source: conf, target: /conf}]\n"
        "    env_file: [web.env]\n"
    )
    stack = load(
        "services:\n  s:\n    extends: {file: ../common/base.yml, service: web}\n",
        {f"{ROOT}/common/base.yml": base, f"{ROOT}/common/web.env": "FROM_FILE=1\n"},
    )
    create = stack.services["s"].create
    mounts = {m["Target"]: m["Source"] for m in host_mounts(create["HostConfig"])}
    assert mounts == {"/data": f"{ROOT}/common/data", "/conf": f"{ROOT}/common/conf"}
    assert "FROM_FILE=1" in create["Env"]
    assert f"{ROOT}/common/base.yml" in stack.env_files  # watched for changes


def test_extends_recursive_across_files() -> None:
    files = {
        f"{DIR}/one.yml": "services:\n  b: {extends: {file: sub/two.yml, service: c}, "
        "environment: [B=1]}\n",
        f"{DIR}/sub/two.yml": "services:\n  c: {extends: d, environment: [C=1]}\n"
        "  d: {image: deep, environment: [D=1]}\n",
    }
    stack = load("services:\n  a: {extends: {file: one.yml, service: b}}\n", files)
    assert stack.services["a"].image == "deep"
    assert sorted(env_of(stack, "a")) == ["B=1", "C=1", "D=1"]
    assert set(stack.services) == {"a"}  # the other files' services are not imported


def test_extends_uses_the_project_environment_in_the_other_file() -> None:
    stack = load(
        "services:\n  s: {extends: {file: base.yml, service: b}}\n",
        {f"{DIR}/base.yml": "services:\n  b: {image: 'img:${TAG}'}\n"},
        env={"TAG": "1.2"},
    )
    assert stack.services["s"].image == "img:1.2"


def test_extends_cycle_in_one_file_names_file_line_and_field() -> None:
    found = one(
        "services:\n"
        "  a: {image: x, extends: b}\n"
        "  b: {image: x, extends: c}\n"
        "  c: {image: x, extends: a}\n"
    )
    assert found.file == FILE and found.line in (2, 3, 4)
    assert found.field.startswith("services.") and found.field.endswith(".extends")
    assert "extends cycle" in found.message
    assert all(f"{n} -> " in found.message for n in "abc")


def test_extends_cycle_across_files() -> None:
    other = f"{DIR}/o.yml"
    found = one(
        "services:\n  a: {image: x, extends: {file: o.yml, service: b}}\n",
        {other: "services:\n  b: {image: x, extends: {file: c.yml, service: a}}\n", FILE: ""},
    )
    assert "extends cycle" in found.message and other in found.message
    assert found.field.endswith(".extends")


def test_extends_self_is_a_cycle() -> None:
    assert "extends cycle" in one("services:\n  a: {image: x, extends: a}\n").message


def test_extends_errors_are_located() -> None:
    missing = one("services:\n  a:\n    extends: nope\n    image: x\n")
    assert (missing.file, missing.line, missing.field) == (FILE, 3, "services.a.extends")
    assert "'nope' is not defined" in missing.message
    bad_key = one("services:\n  a:\n    image: x\n    extends: {service: a, files: x}\n")
    assert bad_key.field == "services.a.extends.files"
    no_file = one("services:\n  a:\n    image: x\n    extends: {service: b, file: gone.yml}\n")
    assert no_file.field == "services.a.extends.file" and "does not exist" in no_file.message
    wrong = one("services:\n  a:\n    image: x\n    extends: [b]\n")
    assert wrong.field == "services.a.extends"
    not_there = one(
        "services:\n  a: {extends: {service: zz, file: b.yml}}\n",
        {f"{DIR}/b.yml": "services:\n  y: {image: x}\n"},
    )
    assert not_there.field == "services.a.extends.service" and "zz" in not_there.message


def test_extends_file_outside_the_boundary_is_refused_and_never_read() -> None:
    spy = tree({"/etc/passwd": "root:x:0:0\n"})
    found = one(
        "services:\n  a: {image: x, extends: {file: ../../../etc/passwd, service: root}}\n",
        sources=spy,
    )
    assert "outside the compose root" in found.message and found.line == 2
    assert found.field == "services.a.extends.file"
    assert "/etc/passwd" not in spy.reads


def test_extends_file_through_a_symlink_out_or_into_desired_is_refused() -> None:
    spy = tree({"/etc/base.yml": "services:\n  b: {image: x}\n"}, {f"{DIR}/b.yml": "/etc/base.yml"})
    found = one("services:\n  a: {extends: {file: b.yml, service: b}}\n", sources=spy)
    assert "outside the compose root" in found.message
    assert not any(p.endswith("base.yml") or p.endswith("b.yml") for p in spy.reads)
    desired = one(
        "services:\n  a: {extends: {file: ../desired/b.yml, service: b}}\n",
        {f"{ROOT}/desired/b.yml": "services:\n  b: {image: x}\n"},
    )
    assert "inside desired/" in desired.message


def test_long_extends_chain_does_not_recurse() -> None:
    n = 3000
    text = "services:\n  s0: {image: x}\n" + "".join(
        f"  s{i}: {{extends: s{i - 1}}}\n" for i in range(1, n)
    )
    start = time.monotonic()
    stack = load(text)
    assert stack.services[f"s{n - 1}"].image == "x"
    assert time.monotonic() - start < 30


# --- include ---------------------------------------------------------------------------

DB = (
    "services:\n"
    "  db:\n"
    "    image: 'postgres:${PG:-15}'\n"
    "    volumes: ['./initdb:/docker-entrypoint-initdb.d', 'pgdata:/var/lib/postgresql']\n"
    "    networks: [back]\n"
    "volumes:\n  pgdata: {}\n"
    "networks:\n  back: {}\n"
)


def test_include_short_form_imports_services_volumes_and_networks() -> None:
    stack = load(
        "include: [../db/compose.yml]\nservices:\n  web: {image: w, depends_on: [db]}\n",
        {f"{ROOT}/db/compose.yml": DB},
    )
    assert set(stack.services) == {"web", "db"}
    db = stack.services["db"]
    assert db.image == "postgres:15"
    mounts = {m["Target"]: m["Source"] for m in host_mounts(db.create["HostConfig"])}
    assert mounts["/docker-entrypoint-initdb.d"] == f"{ROOT}/db/initdb"  # its own directory
    assert mounts["/var/lib/postgresql"] == "p_pgdata"
    assert stack.networks["back"].name == "p_back"
    assert f"{ROOT}/db/compose.yml" in stack.env_files


def test_include_env_file_and_dotenv_of_the_included_project() -> None:
    files = {f"{ROOT}/db/compose.yml": DB, f"{ROOT}/db/.env": "PG=16\n"}
    assert load("include: [../db/compose.yml]\n", files).services["db"].image == "postgres:16"
    # the including project's environment wins over the included .env, as in compose
    stack = load("include: [../db/compose.yml]\n", files, env={"PG": "17"})
    assert stack.services["db"].image == "postgres:17"
    files[f"{DIR}/db.env"] = "PG=14\n"
    stack = load("include:\n  - {path: ../db/compose.yml, env_file: db.env}\n", files)
    assert stack.services["db"].image == "postgres:14"
    missing = one("include:\n  - {path: ../db/compose.yml, env_file: [nope.env]}\n", files)
    assert missing.field == "include[0].env_file[0]" and "does not exist" in missing.message


def test_include_long_form_overrides_and_project_directory() -> None:
    files = {
        f"{ROOT}/db/compose.yml": DB,
        f"{ROOT}/db/override.yml": "services:\n  db: {environment: [X=1]}\n",
    }
    stack = load(
        "include:\n"
        "  - path: [../db/compose.yml, ../db/override.yml]\n"
        "    project_directory: ../data\n",
        files,
    )
    db = stack.services["db"].create
    assert "X=1" in db["Env"]
    mounts = {m["Target"]: m["Source"] for m in host_mounts(db["HostConfig"])}
    assert mounts["/docker-entrypoint-initdb.d"] == f"{ROOT}/data/initdb"


def test_nested_include_is_relative_to_the_included_project() -> None:
    files = {
        f"{ROOT}/a/compose.yml": "include: [b/compose.yml]\nservices:\n  a: {image: a}\n",
        f"{ROOT}/a/b/compose.yml": "services:\n  b: {image: b, volumes: ['./x:/x']}\n",
    }
    stack = load("include: [../a/compose.yml]\nservices:\n  m: {image: m}\n", files)
    assert set(stack.services) == {"m", "a", "b"}
    mount = host_mounts(stack.services["b"].create["HostConfig"])[0]
    assert mount["Source"] == f"{ROOT}/a/b/x"


def test_a_service_may_extend_one_brought_in_by_include() -> None:
    stack = load(
        "include: [../db/compose.yml]\nservices:\n  db2: {extends: db}\n",
        {f"{ROOT}/db/compose.yml": DB},
    )
    binds = stack.services["db2"].create["HostConfig"]["Binds"]
    assert binds == [f"{ROOT}/db/initdb:/docker-entrypoint-initdb.d:rw"]


def test_an_included_resource_redefined_is_merged_the_including_one_over_it() -> None:
    """compose-go's include since v2.10 (wger's compose file sets shm_size and a log driver
    on the db its included postgres.yaml defines): the definition already there is merged
    over the included one with the rules of merging files, and errors point into it."""
    inc = (
        "services:\n  db:\n    image: postgres:15\n    environment: [A=1, B=2]\n"
        "    volumes: ['pg:/var/lib/postgresql/data']\nvolumes:\n  pg: {}\n"
    )
    files = {f"{DIR}/inc.yml": inc}
    mine = "include: [inc.yml]\nservices:\n  db:\n    shm_size: 256mb\n    environment: [B=3]\n"
    db = load(mine, files).services["db"]
    assert db.image == "postgres:15"
    assert db.create["HostConfig"]["ShmSize"] == 256 * 1024 * 1024
    assert sorted(db.create["Env"]) == ["A=1", "B=3"]
    assert db.create["HostConfig"]["Mounts"][0]["Source"] == "p_pg"
    same = load("include: [inc.yml]\nservices:\n  db: {image: postgres:15}\n", files)
    assert same.services["db"].image == "postgres:15"
    bad = one(mine.replace("shm_size: 256mb", "shm_size: lots"), files)
    assert (bad.file, bad.line, bad.field) == (FILE, 4, "services.db.shm_size")
    inc2 = "services:\n  db: {image: 'postgres:16', shm_size: 1mb}\n"
    two = load("include: [inc.yml, inc2.yml]\n", {**files, f"{DIR}/inc2.yml": inc2}).services
    assert two["db"].image == "postgres:15"  # the earlier include's, over the later one's
    assert two["db"].create["HostConfig"]["ShmSize"] == 1024 * 1024


def test_include_cycle_and_self_include() -> None:
    files = {
        f"{DIR}/a.yml": "include: [b.yml]\nservices:\n  a: {image: a}\n",
        f"{DIR}/b.yml": "include: [a.yml]\nservices:\n  b: {image: b}\n",
    }
    found = one("include: [a.yml]\nservices:\n  m: {image: m}\n", files)
    assert "include cycle" in found.message
    assert found.file == f"{DIR}/b.yml" and found.field == "include[0]"
    itself = one("include: [c.yml]\nservices:\n  m: {image: m}\n", {FILE: ""})
    assert "include cycle" in itself.message and itself.line == 1


def test_include_outside_the_boundary_is_refused_and_never_read() -> None:
    spy = tree({"/etc/x.yml": "services: {}\n"}, {f"{DIR}/l.yml": "/etc/x.yml"})
    for target in ("../../../etc/x.yml", "l.yml", "/etc/x.yml"):
        found = one(f"include: ['{target}']\nservices:\n  m: {{image: m}}\n", sources=spy)
        assert "outside the compose root" in found.message and found.field == "include[0]"
    desired = one(
        "include: [../desired/x.yml]\nservices:\n  m: {image: m}\n",
        {f"{ROOT}/desired/x.yml": "services: {}\n"},
    )
    assert "inside desired/" in desired.message
    assert not any("x.yml" in p for p in spy.reads)


def test_include_env_file_outside_the_boundary_is_refused() -> None:
    spy = tree({f"{ROOT}/db/compose.yml": DB, "/etc/shadow": "X=1\n"})
    found = one("include:\n  - {path: ../db/compose.yml, env_file: /etc/shadow}\n", sources=spy)
    assert "outside the compose root" in found.message
    assert "/etc/shadow" not in spy.reads


def test_include_shape_errors_are_located() -> None:
    assert one("include: x.yml\nservices:\n  m: {image: m}\n").field == "include"
    bad = one("include:\n  - {path: a.yml, envfile: x}\nservices:\n  m: {image: m}\n")
    assert bad.field == "include[0].envfile"
    assert one("include:\n  - {}\nservices:\n  m: {image: m}\n").field == "include[0]"
    top = one(
        "include: [i.yml]\nservices:\n  m: {image: m}\n",
        {f"{DIR}/i.yml": "x-berth: {proxy: {service: m}}\nservices:\n  i: {image: i}\n"},
    )
    assert top.file == f"{DIR}/i.yml" and top.field == "x-berth"


def test_include_fan_out_is_bounded() -> None:
    n = 400
    files = {f"{DIR}/f{i}.yml": f"services:\n  s{i}: {{image: x}}\n" for i in range(n)}
    text = "include:\n" + "".join(f"  - f{i}.yml\n" for i in range(n))
    start = time.monotonic()
    found = problems(text, files)
    assert time.monotonic() - start < 30
    assert [p.message for p in found] == [
        "included file is one too many: a stack brings in at most 128 compose files"
    ]


def test_include_nesting_is_bounded() -> None:
    n = 40
    files = {
        f"{DIR}/n{i}.yml": f"include: [n{i + 1}.yml]\nservices:\n  s{i}: {{image: x}}\n"
        for i in range(n)
    }
    found = problems("include: [n0.yml]\n", files)
    assert any("nested more than" in p.message for p in found)


# --- profiles --------------------------------------------------------------------------

PROFILED = (
    "services:\n"
    "  web: {image: w}\n"
    "  debug: {image: d, profiles: [debug]}\n"
    "  tools: {profiles: [tools, ops]}\n"  # no image: not translated, so not refused
)


def test_services_with_profiles_run_only_when_enabled() -> None:
    assert set(load(PROFILED).services) == {"web"}
    assert set(load(PROFILED, env={"COMPOSE_PROFILES": "debug"}).services) == {"web", "debug"}
    with pytest.raises(ConfigError, match="needs 'image'"):
        load(PROFILED, env={"COMPOSE_PROFILES": "x, ops"})
    with pytest.raises(ConfigError, match="needs 'image'"):
        load(PROFILED, env={"COMPOSE_PROFILES": "*"})


def test_compose_profiles_from_dotenv_and_the_process_wins() -> None:
    files = {f"{DIR}/.env": "COMPOSE_PROFILES=debug\n"}
    assert set(load(PROFILED, files).services) == {"web", "debug"}
    only = load(PROFILED, files, env={"COMPOSE_PROFILES": "none"})
    assert set(only.services) == {"web"}


def test_depending_on_a_disabled_service_is_an_error() -> None:
    found = one(
        "services:\n  web: {image: w, depends_on: [debug]}\n  debug: {image: d, "
        "profiles: [debug]}\n"
    )
    assert found.field == "services.web.depends_on.debug"
    assert "disabled" in found.message and "COMPOSE_PROFILES" in found.message


def test_an_empty_profile_runs_until_a_profile_is_chosen() -> None:
    """compose-go splits COMPOSE_PROFILES without dropping empty names, so unset it enables
    the empty profile: pixelfed's `profiles: ["${DOCKER_DB_PROFILE:-}"]` runs by default,
    and setting the variable to any name switches the service off."""
    text = "services:\n  web: {image: w}\n  db:\n    image: d\n    profiles: ['${DB_PROFILE:-}']\n"
    assert set(load(text).services) == {"web", "db"}
    assert set(load(text, env={"DB_PROFILE": "disabled"}).services) == {"web"}
    assert set(load(text, env={"COMPOSE_PROFILES": "debug"}).services) == {"web"}
    assert set(load(text, env={"COMPOSE_PROFILES": "debug,"}).services) == {"web", "db"}


OPTIONAL_DB = (
    "services:\n  api:\n    image: a\n    depends_on:\n"
    "      db: {condition: service_healthy, restart: true, required: false}\n"
    "      cache: {condition: service_started, required: false}\n"
    "  db: {image: d, profiles: [all, db]}\n"
)


def test_an_optional_dependency_is_dropped_when_its_service_is_not_enabled() -> None:
    """compose's `required: false`: the dependent starts without a disabled (or absent)
    dependency, and depends on it as usual when it is enabled (lago's profiles)."""
    alone = load(OPTIONAL_DB).services["api"]
    assert alone.depends_on == ()
    both = load(OPTIONAL_DB, env={"COMPOSE_PROFILES": "db"}).services["api"]
    (db,) = both.depends_on
    assert (db.service, db.condition, db.restart, db.required) == (
        "db",
        "service_healthy",
        True,
        False,
    )
    bad = one(
        "services:\n  a:\n    image: x\n    depends_on: {b: {required: maybe}}\n  b: {image: y}\n"
    )
    assert (bad.line, bad.field) == (4, "services.a.depends_on.b.required")
    needed = one(OPTIONAL_DB.replace("restart: true, required: false", "restart: true"))
    assert needed.field == "services.api.depends_on.db" and "disabled" in needed.message


def test_profiles_merge_across_files_and_bad_profiles_are_located() -> None:
    more = [(f"{DIR}/o.yml", "services:\n  debug: {profiles: [extra]}\n")]
    stack = load(PROFILED, more=more, env={"COMPOSE_PROFILES": "extra"})
    assert "debug" in stack.services
    bad = one("services:\n  a:\n    image: x\n    profiles: debug\n")
    assert (bad.line, bad.field) == (4, "services.a.profiles")
    everyone = one("services:\n  a: {image: x, profiles: [p]}\n")
    assert "every service is disabled" in everyone.message


# --- depends_on on a service that failed -----------------------------------------------


def test_depends_on_a_failed_service_reports_only_the_real_error() -> None:
    found = one("services:\n  x: {image: x, depends_on: [y]}\n  y: {image: 'BAD IMAGE'}\n")
    assert found.field == "services.y.image"


# --- x-* extensions --------------------------------------------------------------------


def test_x_extensions_are_ignored_at_every_level() -> None:
    stack = load(
        "x-top: 1\n"
        "services:\n"
        "  s:\n"
        "    image: x\n"
        "    x-svc: 1\n"
        "    healthcheck: {test: [CMD, 'true'], x-h: 1}\n"
        "    deploy: {x-d: 1, resources: {x-r: 1, limits: {x-l: 1, memory: 1g}}}\n"
        "    logging: {driver: json-file, x-l: 1}\n"
        "    ports: [{target: 80, x-p: 1}]\n"
        "    volumes: [{type: volume, source: v, target: /v, x-v: 1, volume: {x-o: 1}}]\n"
        "    networks: {n: {x-n: 1}}\n"
        "    depends_on: {t: {condition: service_started, x-d: 1}}\n"
        "    ulimits: {nofile: {soft: 1, hard: 2, x-u: 1}}\n"
        "  t: {image: x}\n"
        "networks:\n  n: {x-net: 1, ipam: {x-i: 1, config: [{subnet: 10.9.0.0/24, x-c: 1}]}}\n"
        "volumes:\n  v: {x-vol: 1, external: false}\n"
    )
    assert stack.services["s"].create["HostConfig"]["Memory"] == 1024**3


def test_x_berth_outside_its_places_and_unknown_keys_inside_it_are_errors() -> None:
    found = one(
        "services:\n  s:\n    image: x\n    healthcheck: {test: [CMD, 'true'], x-berth: {}}\n"
    )
    assert found.field == "services.s.healthcheck.x-berth" and "no meaning here" in found.message
    inner = one("services:\n  s: {image: x, x-berth: {x-strategy: stop-first}}\n")
    assert inner.field == "services.s.x-berth.x-strategy" and "unknown key" in inner.message


# --- project name ----------------------------------------------------------------------


def test_compose_project_name_precedence() -> None:
    text = (
        "name: from-file\nservices:\n  s: {image: x, volumes: ['data:/d']}\nvolumes:\n  data: {}\n"
    )
    dotenv = {f"{DIR}/.env": "COMPOSE_PROJECT_NAME=from-dotenv\n"}
    assert load(text, project=None).project == "from-file"
    stack = load(text, dotenv, project=None)
    assert stack.project == "from-dotenv"  # COMPOSE_PROJECT_NAME wins over `name:`
    assert stack.volumes["data"].name == "from-dotenv_data"
    env = {"COMPOSE_PROJECT_NAME": "from-env"}
    assert load(text, dotenv, project=None, env=env).project == "from-env"
    assert load(text, dotenv, project="explicit", env=env).project == "explicit"
    bare = "services:\n  s: {image: x}\n"
    assert load(bare, project=None).project == "compose"  # the directory
    assert load(bare, dotenv, project=None).project == "from-dotenv"


def test_invalid_compose_project_name_is_refused() -> None:
    found = one("services:\n  s: {image: x}\n", project=None, env={"COMPOSE_PROJECT_NAME": "Bad"})
    assert found.field == "COMPOSE_PROJECT_NAME" and "in the environment" in found.message
    dotenv = {f"{DIR}/.env": "COMPOSE_PROJECT_NAME=Bad\n"}
    assert one("services:\n  s: {image: x}\n", dotenv, project=None).file == f"{DIR}/.env"


def test_extends_a_base_without_body_or_not_a_mapping() -> None:
    stack = load(
        "services:\n  s: {image: x, extends: {file: b.yml, service: b}}\n",
        {f"{DIR}/b.yml": "services:\n  b:\n"},
    )
    assert stack.services["s"].image == "x"
    found = problems(
        "services:\n  s: {image: x, extends: {file: b.yml, service: b}}\n",
        {f"{DIR}/b.yml": "services:\n  b: 5\n"},
    )
    assert any(p.field == "services.s.extends" and "not a mapping" in p.message for p in found)


def test_include_diamonds_do_not_explode() -> None:
    """Each level includes the next one twice: 2**20 loads without a bound."""
    levels = 20
    files = {
        f"{DIR}/l{i}.yml": f"include: [l{i + 1}.yml, ./l{i + 1}.yml]\n"
        f"services:\n  s{i}: {{image: x}}\n"
        for i in range(levels)
    }
    files[f"{DIR}/l{levels}.yml"] = "services:\n  last: {image: x}\n"
    start = time.monotonic()
    found = problems("include: [l0.yml]\n", files)
    assert time.monotonic() - start < 30
    assert any("one too many" in p.message or "nested more than" in p.message for p in found)
