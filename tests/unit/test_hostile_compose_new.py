"""Hostile input to the compose-loading code that landed with include/extends/build/secrets:
each case is a located ConfigError (file, line, field, a fragment of the reason), within a
bounded time, and never a read of a file outside the desired/ boundary.

Found by hand and by probing: a seccomp profile nested past Python's recursion limit (a
RecursionError) or holding NaN/1e400 (JSON the engine refuses); a Dockerfile in desired/ or
outside the root when `image:` is given too (the builder reads it itself); `extends` chains
and fan-ins that copy their base into every service (quadratic time and memory, like an
alias bomb); one secret of 1 MiB injected thousands of times (hashed at every rollout
pass); two services with one container_name; network_mode / volumes_from cycles located at
depends_on, which the user did not write; `name:` of the wrong type silently ignored; a
file included many times parsed once per inclusion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from controller.core.boundary import inside
from controller.errors import ConfigError
from tests.unit.test_compose_loader import DIR, FILE, ROOT, SpyTree, load, tree

DESIRED = f"{ROOT}/desired"
DF = {f"{DIR}/Dockerfile": "FROM x", f"{DESIRED}/Dockerfile": "FROM evil"}


def svc(lines: str, top: str = "") -> str:
    """Service `a` (image: i, line 3) with `lines` from line 4 on, then `top`."""
    body = "".join(f"    {line}\n" for line in lines.split("\n"))
    return "services:\n  a:\n    image: i\n" + body + top


def chain(n: int, key: str) -> str:
    """s0 extends s1 ... extends sN; each link adds one value of `key`."""
    links = "".join(f"  s{i}: {{extends: s{i + 1}, {key}: ['{i + 1}']}}\n" for i in range(n))
    return "services:\n" + links + f"  s{n}: {{image: i}}\n"


FAN_IN = (
    "services:\n  base: {image: i, environment: ["
    + ",".join(f"V{i}=1" for i in range(3000))
    + "]}\n"
    + "".join(f"  s{i}: {{extends: base}}\n" for i in range(3000))
)
SECRET_REFS = ",".join(f"{{source: s, target: /t{j}}}" for j in range(40))


@dataclass(frozen=True)
class Case:
    id: str
    compose: str
    line: int | None
    field: str
    fragment: str
    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    project: str | None = "p"


CASES = [
    Case(
        "seccomp-nested-past-recursion-limit",
        svc("security_opt: ['seccomp=p.json']"),
        4,
        "services.a.security_opt[0]",
        "is not JSON",
        files={f"{DIR}/p.json": '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"},
    ),
    Case(
        "seccomp-nan",
        svc("security_opt: ['seccomp=p.json']"),
        4,
        "services.a.security_opt[0]",
        "is not JSON",
        files={f"{DIR}/p.json": '{"defaultAction": NaN}'},
    ),
    Case(
        "seccomp-1e400",
        svc("security_opt: ['seccomp=p.json']"),
        4,
        "services.a.security_opt[0]",
        "is not JSON",
        files={f"{DIR}/p.json": '{"x": 1e400}'},
    ),
    Case(
        "dockerfile-in-desired-with-image",
        svc("build: {context: ., dockerfile: ../desired/Dockerfile}"),
        4,
        "services.a.build.dockerfile",
        "inside desired/",
        files=DF,
    ),
    Case(
        "dockerfile-absolute-with-image",
        svc("build: {context: ., dockerfile: /etc/shadow}"),
        4,
        "services.a.build.dockerfile",
        "outside the compose root",
        files=DF,
    ),
    Case(
        "dockerfile-symlink-to-desired-with-image",
        svc("build: {context: ., dockerfile: L}"),
        4,
        "services.a.build.dockerfile",
        "inside desired/",
        files=DF,
        links={f"{DIR}/L": f"{DESIRED}/Dockerfile"},
    ),
    Case(
        "build-extra-hosts-map-of-null",
        svc("build: {context: ., extra_hosts: {h: null}}"),
        4,
        "services.a.build.extra_hosts.h",
        "must be a list of strings",
        files=DF,
    ),
    Case(
        "build-extra-hosts-map-of-map",
        svc("build: {context: ., extra_hosts: {h: {a: 1}}}"),
        4,
        "services.a.build.extra_hosts.h",
        "must be a list of strings",
        files=DF,
    ),
    Case(
        "extends-chain-growing-ports",
        chain(1500, "ports"),
        None,
        "extends",
        "extends bomb",
    ),
    Case(
        "extends-chain-growing-environment",
        chain(1500, "environment"),
        None,
        "extends",
        "extends bomb",
    ),
    Case("extends-fan-in", FAN_IN, None, "extends", "extends bomb"),
    Case(
        "secret-injected-many-times",
        svc(f"secrets: [{SECRET_REFS}]", "secrets: {s: {environment: BIG}}\n"),
        4,
        "services.a.secrets[16]",
        "injected secret and config files pass",
        env={"BIG": "x" * 1_000_000},
    ),
    Case(
        "config-content-many-services",
        "services:\n"
        + "".join(
            f"  a{i}: {{image: i, configs: [{{source: c, target: /c{j}}}"
            + "".join(f", {{source: c, target: /d{k}}}" for k in range(3))
            + "]}\n"
            for i, j in enumerate(range(30))
        )
        + "configs: {c: {environment: BIG}}\n",
        6,
        "services.a4.configs[0]",
        "injected secret and config files pass",
        env={"BIG": "y" * 1_000_000},
    ),
    Case(
        "container-name-twice",
        "services:\n  a: {image: i, container_name: x}\n  b: {image: i, container_name: x}\n",
        3,
        "services.b.container_name",
        "already the container_name of service 'a'",
    ),
    Case(
        "network-mode-cycle",
        "services:\n  a:\n    image: i\n    network_mode: 'service:b'\n"
        "  b:\n    image: i\n    network_mode: 'service:a'\n",
        4,
        "services.a.network_mode",
        "dependency cycle: a -> b -> a",
    ),
    Case(
        "volumes-from-cycle",
        "services:\n  a:\n    image: i\n    volumes_from: [b]\n"
        "  b:\n    image: i\n    volumes_from: ['service:a:ro']\n",
        4,
        "services.a.volumes_from",
        "dependency cycle: a -> b -> a",
    ),
    Case(
        "network-mode-volumes-from-cycle-of-three",
        "services:\n  a:\n    image: i\n    network_mode: 'service:b'\n"
        "  b:\n    image: i\n    volumes_from: [c]\n"
        "  c:\n    image: i\n    depends_on: [a]\n",
        4,
        "services.a.network_mode",
        "dependency cycle: a -> b -> c -> a",
    ),
    Case(
        "top-level-name-mapping",
        svc("", "name: {a: 1}\n"),
        5,
        "name",
        "must be a string",
        project=None,
    ),
    Case(
        "top-level-name-list-with-explicit-project",
        svc("", "name: [x]\n"),
        5,
        "name",
        "must be a string",
    ),
]


def _located(case: Case, sources: SpyTree) -> list[tuple[str, int | None, str, str]]:
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load(case.compose, env=case.env, project=case.project, sources=sources)
    assert time.monotonic() - started < 10, "the load took more than 10 s"
    return [(p.file, p.line, p.field, p.message) for p in info.value.problems]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_compose_is_a_located_error(case: Case) -> None:
    sources = tree(case.files, case.links)
    found = _located(case, sources)
    hits = [
        p
        for p in found
        if p[0] == FILE
        and case.fragment in p[3]
        and (case.field in p[2] if case.line is None else p[1:3] == (case.line, case.field))
    ]
    assert hits, found
    assert all(len(p[3]) < 600 for p in found), found
    desired = sources.boundary.desired
    assert not any(inside(sources.resolve(r), desired) for r in sources.reads), sources.reads


def test_a_file_included_many_times_is_parsed_once() -> None:
    """Each inclusion used to parse the file again: 128 inclusions of a 256 KiB file
    stalled a load for minutes."""
    big = "x-pad: [" + ",".join(f"v{i}" for i in range(20_000)) + "]\nservices: {b: {image: i}}\n"
    sources = tree({f"{DIR}/o.yml": big})
    text = "include: [" + ",".join(["o.yml"] * 40) + "]\nservices: {a: {image: i}}\n"
    started = time.monotonic()
    stack = load(text, sources=sources)
    assert set(stack.services) == {"a", "b"}
    assert sources.reads.count(f"{DIR}/o.yml") == 1, sources.reads
    assert time.monotonic() - started < 10


def test_a_short_extends_chain_and_a_shared_base_still_load() -> None:
    stack = load(chain(40, "ports"))
    assert len(stack.services) == 41
    fan = "services:\n  base: {image: i, environment: [A=1, B=2]}\n" + "".join(
        f"  s{i}: {{extends: base}}\n" for i in range(300)
    )
    assert len(load(fan).services) == 301


def test_dockerfile_may_be_missing_when_image_is_given() -> None:
    """Compose pulls first when `image:` is given: the boundary is checked, not existence."""
    stack = load(svc("build: {context: ., dockerfile: sub/Dockerfile.gone}"), sources=tree())
    assert stack.services["a"].build is not None


def test_build_extra_hosts_map_with_several_addresses() -> None:
    compose = svc("build: {context: ., extra_hosts: {h: [10.0.0.1, '::1'], g: 10.0.0.2}}")
    build = load(compose, sources=tree(DF)).services["a"].build
    assert build is not None
    assert build.extra_hosts == (("h", "10.0.0.1"), ("h", "::1"), ("g", "10.0.0.2"))


def test_included_build_context_and_secret_file_are_relative_to_the_included_file() -> None:
    """compose resolves them against the included file's directory; they were resolved
    against the including project's, so `build: .` built the wrong directory."""
    sub = {
        f"{DIR}/sub/o.yml": "services:\n  b: {build: {dockerfile: D}, secrets: [s]}\n"
        "  c: {build: .}\nsecrets: {s: {file: ./s.txt}}\n",
        f"{DIR}/sub/D": "FROM x",
        f"{DIR}/sub/Dockerfile": "FROM x",
    }
    stack = load("include: [sub/o.yml]\nservices: {a: {image: i}}\n", sources=tree(sub))
    for name in ("b", "c"):
        build = stack.services[name].build
        assert build is not None and build.context == f"{DIR}/sub", build
    mounts = stack.services["b"].create["HostConfig"]["Mounts"]
    assert [m["Source"] for m in mounts] == [f"{DIR}/sub/s.txt"]


def test_a_build_context_rebased_out_of_the_root_is_still_refused() -> None:
    sub = {f"{DIR}/sub/o.yml": "services: {b: {build: ../../desired}}\n"}
    with pytest.raises(ConfigError) as info:
        load("include: [sub/o.yml]\nservices: {a: {image: i}}\n", sources=tree(sub))
    (p,) = info.value.problems
    assert (p.file, p.line, p.field) == (f"{DIR}/sub/o.yml", 1, "services.b.build.context")
    assert "inside desired/" in p.message
