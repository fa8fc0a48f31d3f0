"""The desired/ security boundary (DESIGN §2): every way a path can leave the operator's tree.

Each case is a small tree (files, symlinks, FIFOs) and the exact refusal it must produce:
the file, line and field, a fragment of the reason, and never a byte of the refused file's
content. The same cases run over real files and symlinks (`ConfigTree`, the adapter) and
over the in-memory fake (`MemoryTree`), which pins the fake to the real thing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.adapters.files import ConfigTree, load_config, read_regular
from controller.core.config import build_config
from controller.errors import ConfigError
from tests.fakes_files import MemoryTree

SECRET = "SECRET-CONTENT-7f3a"  # in every file that must be refused; never in a message
COMPOSE = """\
services:
  api:
    image: reg/api
    expose: ["8000"]
    x-berth:
      upstream: {name: api_up, port: 8000}
  web:
    image: nginx
x-berth:
  proxy:
    service: web
    upstreams_file: ../nginx/up.conf
name: app
"""
EVIL = f"""\
# {SECRET}
services:
  api:
    image: evil/api
    privileged: true
    volumes: ["/:/host"]
"""
DESIRED = """\
project: app
compose: ../compose/c.yml
services:
  api:
    tag: "1.0.0"
"""

Link = tuple[str, str]  # ("link", target as written)
FIFO = ("fifo", "")


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # relative to the root: which file the problem must name
    line: int | None
    field: str
    fragment: str
    tree: dict[str, str | Link] = field(default_factory=dict)
    desired: str = DESIRED
    compose: str = COMPOSE
    real_only: bool = False  # FIFOs and devices: only the adapter can meet them


def dz(old: str, new: str) -> str:
    assert old in DESIRED
    return DESIRED.replace(old, new)


def cz(old: str, new: str) -> str:
    assert old in COMPOSE
    return COMPOSE.replace(old, new)


def api(lines: str) -> str:
    """The base compose file with `lines` added to the api service (from line 4 on)."""
    return cz("    image: reg/api\n", "    image: reg/api\n" + lines)


D, C = "desired/app.yaml", "compose/c.yml"
CASES = [
    Case(
        "compose-inside-desired",
        D,
        2,
        "compose",
        "inside desired/",
        tree={"desired/evil.yml": EVIL},
        desired=dz("../compose/c.yml", "evil.yml"),
    ),
    Case(
        "compose-absolute-outside",
        D,
        2,
        "compose",
        "outside the compose root",
        tree={"/outside/c.yml": EVIL},
        desired=dz("../compose/c.yml", "/outside/c.yml"),
    ),
    Case(
        "compose-dotdot-outside",
        D,
        2,
        "compose",
        "outside the compose root",
        tree={"/outside/c.yml": EVIL},
        desired=dz("../compose/c.yml", "../../outside/c.yml"),
    ),
    Case(
        "compose-symlink-in-desired-leads-out",
        D,
        2,
        "compose",
        "outside the compose root",
        tree={"/outside/c.yml": EVIL, "desired/sub/c.yml": ("link", "/outside/c.yml")},
        desired=dz("../compose/c.yml", "sub/c.yml"),
    ),
    Case(
        "compose-symlink-in-tree-into-desired",
        D,
        2,
        "compose",
        "inside desired/",
        tree={"desired/x.yml": EVIL, "compose/evil.yml": ("link", "../desired/x.yml")},
        desired=dz("../compose/c.yml", "../compose/evil.yml"),
    ),
    Case(
        "compose-symlinked-folder-into-desired",
        D,
        2,
        "compose",
        "inside desired/",
        tree={"desired/c.yml": EVIL, "compose/sub": ("link", "../desired")},
        desired=dz("../compose/c.yml", "../compose/sub/c.yml"),
    ),
    Case(
        "override-appended-from-desired",
        D,
        4,
        "compose[1]",
        "inside desired/",
        tree={"desired/over.yml": EVIL},
        desired=dz("compose: ../compose/c.yml", "compose:\n  - ../compose/c.yml\n  - over.yml"),
    ),
    Case(
        "first-file-in-desired-with-dotenv",
        D,
        3,
        "compose[0]",
        "inside desired/",
        tree={"desired/.env": f"IMG=evil # {SECRET}\n", "desired/first.yml": EVIL},
        desired=dz("compose: ../compose/c.yml", "compose:\n  - first.yml\n  - ../compose/c.yml"),
    ),
    Case(
        "dotenv-symlink-into-desired",
        D,
        2,
        "compose",
        ".env beside it",
        tree={"desired/vars": f"A={SECRET}\n", "compose/.env": ("link", "../desired/vars")},
    ),
    Case(
        "env-file-into-desired",
        C,
        4,
        "services.api.env_file",
        "inside desired/",
        tree={"desired/vars.env": f"A={SECRET}\n"},
        compose=cz(
            "    image: reg/api\n", "    image: reg/api\n    env_file: ../desired/vars.env\n"
        ),
    ),
    Case(
        "env-file-absolute-outside",
        C,
        4,
        "services.api.env_file",
        "outside the compose root",
        tree={"/outside/vars.env": f"A={SECRET}\n"},
        compose=api("    env_file: /outside/vars.env\n"),
    ),
    Case(
        "env-file-symlink-leads-out",
        C,
        4,
        "services.api.env_file",
        "outside the compose root",
        tree={
            "/outside/vars.env": f"A={SECRET}\n",
            "compose/vars.env": ("link", "/outside/vars.env"),
        },
        compose=api("    env_file: vars.env\n"),
    ),
    Case(
        "bind-relative-into-desired",
        C,
        4,
        "services.api.volumes[0]",
        "inside desired/",
        compose=cz(
            "    image: reg/api\n", '    image: reg/api\n    volumes: ["../desired:/conf:ro"]\n'
        ),
    ),
    Case(
        "bind-absolute-into-desired",
        C,
        4,
        "services.api.volumes[0]",
        "inside desired/",
        compose=cz(
            "    image: reg/api\n", '    image: reg/api\n    volumes: ["{root}/desired:/conf"]\n'
        ),
    ),
    Case(
        "bind-relative-escapes-root",
        C,
        4,
        "services.api.volumes[0]",
        "outside the compose root",
        compose=api('    volumes: ["../../..:/host"]\n'),
    ),
    Case(
        "bind-relative-through-symlink-out",
        C,
        4,
        "services.api.volumes[0]",
        "outside the compose root",
        tree={"compose/data": ("link", "/outside")},
        compose=api('    volumes: ["./data:/data"]\n'),
    ),
    Case(
        "volume-bind-device-into-desired",
        C,
        16,
        "volumes.data.driver_opts.device",
        "inside desired/",
        compose=COMPOSE
        + "volumes:\n  data:\n    driver_opts: {type: none, o: bind, device: ../desired}\n",
    ),
    Case(
        "upstreams-into-desired",
        C,
        12,
        "x-berth.proxy.upstreams_file",
        "inside desired/",
        compose=cz("../nginx/up.conf", "../desired/up.conf"),
    ),
    Case(
        "upstreams-symlinked-folder-out",
        C,
        12,
        "x-berth.proxy.upstreams_file",
        "outside the compose root",
        tree={"nginx": ("link", "/outside")},
    ),
    Case(
        "upstreams-absolute-outside",
        C,
        12,
        "x-berth.proxy.upstreams_file",
        "outside the compose root",
        compose=cz("../nginx/up.conf", "/etc/nginx/conf.d/evil.conf"),
    ),
    Case(
        "compose-not-yaml-in-tree",
        D,
        2,
        "compose",
        "not a .yml or .yaml file",
        tree={"nginx/certs/key.pem": f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n"},
        desired=dz("../compose/c.yml", "../nginx/certs/key.pem"),
    ),
    Case(
        "compose-fifo",
        D,
        2,
        "compose",
        "FIFO",
        tree={"compose/fifo.yml": FIFO},
        desired=dz("../compose/c.yml", "../compose/fifo.yml"),
        real_only=True,
    ),
    Case(  # the project's own .env: the problem names it (the desired file chose nothing)
        "dotenv-fifo",
        "compose/.env",
        None,
        "",
        "FIFO",
        tree={"compose/.env": FIFO},
        real_only=True,
    ),
    Case(
        "env-file-fifo",
        C,
        4,
        "services.api.env_file",
        "FIFO",
        tree={"compose/vars.env": FIFO},
        compose=api("    env_file: vars.env\n"),
        real_only=True,
    ),
    Case(
        "device-symlink-committed-into-desired",
        C,
        4,
        "services.api.devices[0]",
        "inside desired/",
        tree={"desired/dev": ("link", "/dev/mem")},
        compose=api('    devices: ["{root}/desired/dev:/dev/x"]\n'),
    ),
    Case(
        "device-path-through-desired-dotdot",
        C,
        4,
        "services.api.devices[0]",
        "inside desired/",
        tree={"desired/sub": ("link", "/dev")},
        compose=api('    devices: ["{root}/desired/sub/../sub/null:/dev/x"]\n'),
    ),
    Case(
        "volume-rbind-device-in-desired",
        C,
        17,
        "volumes.data.driver_opts.device",
        "inside desired/",
        compose=api("    volumes: ['data:/data']\n")
        + "volumes:\n  data:\n    driver_opts: {type: none, o: rbind, device: ../desired}\n",
    ),
    Case(
        "volume-overlay-lowerdir-in-desired",
        C,
        17,
        "volumes.data.driver_opts.o",
        "inside desired/",
        compose=api("    volumes: ['data:/data']\n")
        + "volumes:\n  data:\n    driver_opts: {type: overlay, device: overlay, "
        + "o: 'lowerdir=/usr:{root}/desired,upperdir=/tmp/u,workdir=/tmp/w'}\n",
    ),
    Case(
        "bind-source-containing-desired",
        C,
        4,
        "services.api.volumes[0]",
        "which contains desired/",
        compose=api('    volumes: ["..:/repo:ro"]\n'),
    ),
    Case(
        "bind-host-root-writable",
        C,
        4,
        "services.api.volumes[0]",
        "is writable and contains desired/",
        compose=api('    volumes: ["/:/host"]\n'),
    ),
    Case(
        "bind-host-root-writable-long-syntax",
        C,
        4,
        "services.api.volumes[0]",
        "is writable and contains desired/",
        compose=api("    volumes: [{type: bind, source: /, target: /host, read_only: false}]\n"),
    ),
    Case(
        "bind-absolute-source-containing-desired-read-only",
        C,
        4,
        "services.api.volumes[0]",
        "which contains desired/",
        compose=api('    volumes: ["{root}:/repo:ro"]\n'),
    ),
    Case(
        "bind-host-root-through-a-symlink",
        C,
        4,
        "services.api.volumes[0]",
        "resolves to /,",
        tree={"compose/hostroot": ("link", "/")},
        compose=api('    volumes: ["./hostroot:/host:ro"]\n'),
    ),
    Case(
        "bind-absolute-through-symlink-in-desired",
        C,
        4,
        "services.api.volumes[0]",
        "inside desired/",
        tree={"desired/etc": ("link", "/etc")},
        compose=api('    volumes: ["{root}/desired/etc:/conf"]\n'),
    ),
    Case(
        "seccomp-profile-in-desired",
        C,
        4,
        "services.api.security_opt[0]",
        "inside desired/",
        tree={"desired/profile.json": '{"defaultAction": "SCMP_ACT_ALLOW"}'},
        compose=api('    security_opt: ["seccomp=../desired/profile.json"]\n'),
    ),
    Case(
        "seccomp-profile-outside-root",
        C,
        4,
        "services.api.security_opt[0]",
        "outside the compose root",
        tree={"/outside/p.json": "{}"},
        compose=api('    security_opt: ["seccomp:../../outside/p.json"]\n'),
    ),
    Case(
        "compose-device-via-symlink",
        D,
        2,
        "compose",
        "outside the compose root",
        tree={"compose/zero.yml": ("link", "/dev/zero")},
        desired=dz("../compose/c.yml", "../compose/zero.yml"),
        real_only=True,
    ),
]


def _fill(text: str, root: str) -> str:
    return text.replace("{root}", root)


def real_tree(case: Case, base: Path) -> tuple[ConfigTree, str, Callable[[str], str]]:
    """The case as real files under base/r; `/outside/...` becomes base/outside/..."""
    root = base / "r"

    def place(rel: str) -> Path:
        return base / rel.lstrip("/") if rel.startswith("/outside") else root / rel

    files = {"compose/c.yml": _fill(case.compose, str(root)), "desired/app.yaml": case.desired}
    (base / "outside").mkdir(parents=True)
    (root / "nginx").mkdir(parents=True)
    for rel, content in {**files, **case.tree}.items():
        if rel == "nginx":
            (root / "nginx").rmdir()
        path = place(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple) and content[0] == "link":
            target = content[1]
            target = str(base / target.lstrip("/")) if target.startswith("/outside") else target
            os.symlink(target, path)
        elif isinstance(content, tuple):
            os.mkfifo(path)
        else:
            path.write_text(content)
    tree = ConfigTree(root=str(root), desired=str(root / "desired"))
    return tree, str(root), lambda rel: str(place(rel))


def memory_tree(case: Case) -> tuple[MemoryTree, str, Callable[[str], str]]:
    root = "/r"

    def place(rel: str) -> str:
        return rel if rel.startswith("/") else f"{root}/{rel}"

    files: dict[str, str] = {}
    links: dict[str, str] = {}
    base = {"compose/c.yml": _fill(case.compose, root), "desired/app.yaml": case.desired}
    for rel, content in {**base, **case.tree}.items():
        if isinstance(content, tuple):
            links[place(rel)] = content[1]
        else:
            files[place(rel)] = content
    return MemoryTree(files, root=root, desired=f"{root}/desired", links=links), root, place


def _problems(tree: ConfigTree | MemoryTree, desired_path: str, text: str) -> list[str]:
    result: list[str] = []
    done = threading.Event()

    def run() -> None:  # a FIFO that is opened blocks forever: run with a deadline
        try:
            build_config([(desired_path, text)], environ={}, files=tree)
        except ConfigError as exc:
            result.extend(f"{p.file}|{p.line}|{p.field}|{p.message}" for p in exc.problems)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10), "loading the configuration hung"
    return result


def _check(case: Case, problems: list[str], where: Callable[[str], str]) -> None:
    want = f"{where(case.file)}|{case.line}|{case.field}|"
    hits = [p for p in problems if p.startswith(want)]
    assert hits, f"want {want}..., got {problems}"
    assert any(case.fragment in p for p in hits), hits
    assert not any(SECRET in p for p in problems), problems


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_on_real_files(case: Case, tmp_path: Path) -> None:
    tree, _root, place = real_tree(case, tmp_path)
    _check(case, _problems(tree, place("desired/app.yaml"), case.desired), place)


@pytest.mark.parametrize(
    "case", [c for c in CASES if not c.real_only], ids=[c.id for c in CASES if not c.real_only]
)
def test_refused_in_memory(case: Case) -> None:
    tree, _root, place = memory_tree(case)
    _check(case, _problems(tree, place("desired/app.yaml"), case.desired), place)


def test_enough_ways_out() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize(
    "extra",
    [
        '    volumes: ["/var/run/docker.sock:/var/run/docker.sock"]\n',  # operator's own choice
        '    volumes: ["./data:/data"]\n',
        "    env_file: vars.env\n",
        # the host's whole tree, read-only (node-exporter, cAdvisor): see mounts.py
        '    volumes: ["/:/rootfs:ro"]\n',
        '    volumes: ["/:/host:ro,rslave"]\n',
        "    volumes: [{type: bind, source: /, target: /hostfs, read_only: true}]\n",
    ],
)
def test_inside_the_tree_is_accepted(extra: str, tmp_path: Path) -> None:
    compose = cz("    image: reg/api\n", "    image: reg/api\n" + extra)
    case = Case("ok", D, None, "", "", tree={"compose/vars.env": "A=1\n"}, compose=compose)
    for tree, _root, place in (real_tree(case, tmp_path), memory_tree(case)):
        assert _problems(tree, place("desired/app.yaml"), case.desired) == []


def test_a_seccomp_profile_in_the_tree_is_sent_as_its_json(tmp_path: Path) -> None:
    """The Engine API takes the profile itself; compose reads the file on the client."""
    compose = cz(
        "    image: reg/api\n",
        '    image: reg/api\n    security_opt: ["seccomp=prof.json", "no-new-privileges"]\n',
    )
    tree_files: dict[str, str | Link] = {"compose/prof.json": '{ "defaultAction": "X" }'}
    case = Case("ok", D, None, "", "", tree=tree_files, compose=compose)
    _tree, _root, place = real_tree(case, tmp_path)
    cfg = load_config(str(Path(place("desired/app.yaml")).parent), {}, root=str(tmp_path / "r"))
    api = next(t for t in cfg.targets if t.service == "api")
    opts = api.spec.create["HostConfig"]["SecurityOpt"]
    assert opts == ['seccomp={"defaultAction":"X"}', "no-new-privileges"]


def test_absolute_compose_path_inside_root_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "r"
    case = Case("ok", D, None, "", "", desired=dz("../compose/c.yml", f"{root}/compose/c.yml"))
    tree, _root, place = real_tree(case, tmp_path)
    assert _problems(tree, place("desired/app.yaml"), case.desired) == []


def test_compose_root_inside_desired_is_refused(tmp_path: Path) -> None:
    (tmp_path / "desired" / "sub").mkdir(parents=True)
    with pytest.raises(ConfigError) as info:
        ConfigTree(root=str(tmp_path / "desired" / "sub"), desired=str(tmp_path / "desired"))
    assert "inside desired/" in str(info.value)
    with pytest.raises(ConfigError, match="may not be /"):
        ConfigTree(root="/", desired=str(tmp_path / "desired"))


def test_explicit_compose_root_narrows_the_tree(tmp_path: Path) -> None:
    """--compose-root compose/ leaves nginx/ (the upstreams file) outside: refused."""
    case = Case("ok", D, None, "", "")
    _tree, root, _place = real_tree(case, tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(str(Path(root) / "desired"), {}, root=str(Path(root) / "compose"))
    assert "x-berth.proxy.upstreams_file" in str(info.value)
    assert "outside the compose root" in str(info.value)
    config = load_config(str(Path(root) / "desired"), {}, root=root)
    assert config.targets[0].image == "reg/api:1.0.0"


@pytest.mark.parametrize("path", ["/proc/self/environ", "/proc/self/status", "/dev/zero"])
def test_pseudo_files_are_never_read(path: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_regular(path)
    assert "refused" in str(info.value)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "f.yml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="FIFO"):
        read_regular(str(fifo))


def test_fifo_in_desired_is_reported_not_waited_for(tmp_path: Path) -> None:
    case = Case("ok", D, None, "", "")
    _tree, root, _place = real_tree(case, tmp_path)
    os.mkfifo(Path(root) / "desired" / "blocked.yaml")
    from controller.adapters.files import load_config_partial

    partial = load_config_partial(str(Path(root) / "desired"), {}, root=None)
    bad = str(Path(root) / "desired" / "blocked.yaml")
    assert not partial.valid(bad) and "FIFO" in partial.problems[bad][0].message
    assert partial.valid(str(Path(root) / "desired" / "app.yaml"))


def test_paths_through_a_symlink_in_desired_are_used_resolved(tmp_path: Path) -> None:
    """`compose: lnk/c.yml` with desired/lnk -> ../compose: the compose file is inside the
    tree, but every path derived from it (project directory, bind sources, upstreams
    file) must be the resolved one, or a later commit re-pointing desired/lnk would move
    them without the boundary check seeing it."""
    compose = api('    volumes: ["./data:/data"]\n')
    case = Case(
        "ok",
        D,
        None,
        "",
        "",
        tree={"desired/lnk": ("link", "../compose")},
        compose=compose,
        desired=dz("../compose/c.yml", "lnk/c.yml"),
    )
    tree, root, place = real_tree(case, tmp_path)
    config = build_config([(place("desired/app.yaml"), case.desired)], environ={}, files=tree)
    stack = config.stacks["app"]
    assert stack.compose_files == (f"{root}/compose/c.yml",)
    assert stack.services["api"].create["HostConfig"]["Binds"] == [f"{root}/compose/data:/data:rw"]
    assert stack.proxy is not None and stack.proxy.upstreams_file == f"{root}/nginx/up.conf"
    assert all("/desired/" not in f for f in stack.env_files)


def test_two_projects_cannot_share_an_upstreams_file_through_a_symlink(tmp_path: Path) -> None:
    """Two spellings of one upstreams file (a symlinked folder) are one file: two projects
    writing it is refused, as with the same spelling."""
    other = COMPOSE.replace("name: app", "name: b").replace("../nginx/up.conf", "../lnk/up.conf")
    case = Case("ok", D, None, "", "", tree={"lnk": ("link", "nginx"), "compose/d.yml": other})
    tree, _root, place = real_tree(case, tmp_path)
    b = 'compose: ../compose/d.yml\nservices:\n  api: {tag: "2.0.0"}\n'
    files = [(place("desired/app.yaml"), case.desired), (place("desired/b.yaml"), b)]
    with pytest.raises(ConfigError) as info:
        build_config(files, environ={}, files=tree)
    assert "upstreams_file" in str(info.value) and "also written for project" in str(info.value)


def test_desired_cannot_choose_the_project(tmp_path: Path) -> None:
    """`project:` in desired/ would name the networks and volumes (`{project}_{key}`) and
    so reach another stack's data: it may only repeat the compose file's project."""
    case = Case(
        "x",
        D,
        1,
        "project",
        "the compose file chooses the project",
        desired=DESIRED.replace("project: app", "project: proddb"),
    )
    for tree, _root, place in (real_tree(case, tmp_path), memory_tree(case)):
        _check(case, _problems(tree, place("desired/app.yaml"), case.desired), place)


def test_the_first_compose_file_cannot_bring_another_directory_s_dotenv(tmp_path: Path) -> None:
    """compose: [../b/other.yml, ../compose/c.yml] would make b/.env and b/ the project's
    environment and base directory for c.yml: refused, at the entry that crosses."""
    case = Case(
        "x",
        D,
        4,
        "compose[1]",
        "outside the directory of the first compose file",
        tree={
            "b/other.yml": "services:\n  x:\n    image: busybox\n",
            "b/.env": f"REGISTRY=evil # {SECRET}\n",
        },
        desired=dz(
            "compose: ../compose/c.yml", "compose:\n  - ../b/other.yml\n  - ../compose/c.yml"
        ),
    )
    for tree, _root, place in (real_tree(case, tmp_path), memory_tree(case)):
        _check(case, _problems(tree, place("desired/app.yaml"), case.desired), place)


def test_two_projects_cannot_share_a_network_or_volume_name(tmp_path: Path) -> None:
    """`app` + network `x_y` and `app_x` + network `y` both give `app_x_y`: refused in both
    files (external networks and volumes are meant to be shared and are not refused)."""
    mine = api("    networks: [x_y]\n    volumes: ['x_db:/d']\n") + (
        "networks:\n  x_y: {internal: true}\n  default: {}\nvolumes:\n  x_db: {}\n"
    )
    theirs = (
        "name: app_x\nservices:\n  t:\n    image: busybox\n    networks: [y]\n"
        "    volumes: ['db:/steal']\nnetworks:\n  y: {}\nvolumes:\n  db: {}\n"
    )
    case = Case("x", D, None, "", "", compose=mine, tree={"compose/t.yml": theirs})
    tree, _root, place = real_tree(case, tmp_path)
    other = "compose: ../compose/t.yml\nservices: {t: {tag: '1'}}\n"
    files = [(place("desired/app.yaml"), case.desired), (place("desired/t.yaml"), other)]
    with pytest.raises(ConfigError) as info:
        build_config(files, environ={}, files=tree)
    text = str(info.value)
    assert "network 'app_x_y' is also a network of project 'app_x'" in text, text
    assert "volume 'app_x_db' is also a volume of project 'app'" in text, text
