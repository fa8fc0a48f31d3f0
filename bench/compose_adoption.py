"""How many real-world compose files Berth adopts with a desired/ file alone (issue 12).

For each project directory of a corpus (default: /work/compose-corpus and
/work/compose-corpus-holdout, kept outside this repository for licensing), the benchmark
does what a new user does: it writes one desired file naming every service of the compose
file(s) that `docker compose up` would start (profiles respected), with a tag (the tag of
its image; `latest` when the image has none; `v1` when the service only builds or its
image's tag cannot be written in desired/), and runs
`berth validate --json` against a temporary copy. Accepted / refused, the first problems,
and a table of refusal reasons (problems grouped by the key or message that refused them).

A project directory holds the compose file(s) with the files they refer to, relative paths
kept; `compose-files.txt` lists the compose files in `docker compose -f` order (without it,
the one conventional name at the top: compose.yaml, compose.yml, docker-compose.yml,
docker-compose.yaml). `berth validate` has no switch that prints the translated Engine API
bodies, so for the accepted projects the silent-ignore check loads the same temporary copy
in-process (`controller.adapters.files.load_config`) and looks for every value written in
each compose service (and top-level network, volume, secret, config) in Berth's translation of it
(`ServiceSpec`: create body, networks, build, x-berth options, depends_on; the stack's
networks and volumes). A value none of whose words or numbers (durations and sizes also as
nanoseconds / seconds / bytes) appear there is reported as a *suspected* silent ignore: the
check is deliberately loose (any shared word counts as translated), so what it reports is
worth a look, and what it misses is possible.

Usage:
    .venv/bin/python bench/compose_adoption.py [CORPUS_DIR ...] [--no-write] [--json FILE]
        [--reveal-holdout] [--workdir DIR]

Prints a Markdown section and appends it to bench/RESULTS.md (unless --no-write). Targets
are reported, never asserted: >= 90 % of real-world compose files adopted, 0 silent ignores.
A corpus whose directory name ends in `holdout` is reported by counts only (no project
names, no refusal texts) unless --reveal-holdout: it is the honest measurement, kept out
of sight of whoever fixes what the other corpus shows. Berth is run as `python -m
controller` of the tree this script is in, so `python OTHER/bench/compose_adoption.py`
measures the checkout OTHER.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ruamel.yaml import YAML  # noqa: E402

DEFAULT_CORPORA = ("/work/compose-corpus", "/work/compose-corpus-holdout")
RESULTS = ROOT / "bench" / "RESULTS.md"
CONVENTIONAL = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
TARGET_PCT = 90.0
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
VAR_RE = re.compile(
    r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)
# Keys whose value is user data under user-chosen keys: the key itself is translated too.
FREE_FORM_PARENTS = frozenset(
    {
        "environment",
        "labels",
        "sysctls",
        "ulimits",
        "extra_hosts",
        "options",
        "args",
        "driver_opts",
        "networks",
        "depends_on",
    }
)
# Keys consumed by loading rather than translated into the body.
# keys whose values rightly appear nowhere in the body: the image (the desired tag
# replaces its tag), files read, the extended service, x-berth, and profiles (which select
# the service, as in compose, and leave no trace on the container)
NOT_IN_BODY = frozenset({"image", "env_file", "extends", "x-berth", "profiles"})


# ---------------------------------------------------------------------------------------
# Reading a project the way a user sees it


@dataclass
class Project:
    corpus: str
    name: str
    path: Path
    compose_files: list[str]
    services: dict[str, str | None] = field(default_factory=dict)  # name -> image as written
    profiles: dict[str, list[str]] = field(default_factory=dict)  # name -> its profiles
    env: dict[str, str] = field(default_factory=dict)
    docs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (file, document)
    read_error: str | None = None


@dataclass
class Outcome:
    corpus: str
    project: str
    services: int
    accepted: bool
    crashed: bool
    problems: list[dict[str, Any]]
    reasons: list[str]
    tags: dict[str, str]
    suspected_ignores: list[str] = field(default_factory=list)
    ignore_check: str = "skipped"  # done / skipped / error: ...
    seconds: float = 0.0


def _yaml() -> YAML:
    y = YAML(typ="safe", pure=True)
    y.constructor.add_constructor("!reset", lambda _c, _n: None)
    y.constructor.add_constructor("!override", lambda c, n: _construct_plain(c, n))
    return y


def _construct_plain(constructor: Any, node: Any) -> Any:
    if node.id == "mapping":
        return constructor.construct_mapping(node, deep=True)
    if node.id == "sequence":
        return constructor.construct_sequence(node, deep=True)
    return constructor.construct_scalar(node)


def parse_env_file(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def interpolate(value: str, env: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op = m.group(2) or ""
        val = env.get(name)
        if op in (":-", "-"):
            if val is None or (op == ":-" and not val):
                return interpolate(m.group(3) or "", env)
            return val
        if op in (":+", "+"):
            present = val is not None and (op == "+" or bool(val))
            return interpolate(m.group(3) or "", env) if present else ""
        return val or ""

    return VAR_RE.sub(one, value)


def compose_files_of(path: Path) -> list[str]:
    listing = path / "compose-files.txt"
    if listing.is_file():
        return [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
    return [n for n in CONVENTIONAL if (path / n).is_file()][:1]


def read_project(corpus: str, path: Path) -> Project:
    proj = Project(corpus=corpus, name=path.name, path=path, compose_files=compose_files_of(path))
    if not proj.compose_files:
        proj.read_error = "no compose file"
        return proj
    first_dir = (path / proj.compose_files[0]).parent
    dotenv = first_dir / ".env"
    if dotenv.is_file():
        proj.env = parse_env_file(dotenv.read_text(errors="replace"))
    todo = list(proj.compose_files)
    seen: set[Path] = set()
    while todo:
        rel = todo.pop(0)
        file = (path / rel).resolve()
        if file in seen or not file.is_file():
            continue
        seen.add(file)
        try:
            doc = _yaml().load(file.read_text(errors="replace"))
        except Exception as exc:  # a file compose itself would refuse: Berth decides
            proj.read_error = f"{rel}: {type(exc).__name__}"
            continue
        if not isinstance(doc, dict):
            continue
        proj.docs.append((rel, doc))
        for svc_name, svc in (doc.get("services") or {}).items():
            image = svc.get("image") if isinstance(svc, dict) else None
            wanted = _profiles_with_extends(file, svc, proj.env)
            if wanted:
                proj.profiles[str(svc_name)] = wanted
            if isinstance(image, str):
                proj.services[str(svc_name)] = image
            else:
                proj.services.setdefault(str(svc_name), None)
        includes = doc.get("include") or []
        for inc in includes if isinstance(includes, list) else []:
            paths = inc.get("path") if isinstance(inc, dict) else inc
            for p in [paths] if isinstance(paths, str) else (paths or []):
                if isinstance(p, str):
                    todo.append(os.path.relpath(file.parent / interpolate(p, proj.env), path))
    return proj


def _profiles_with_extends(
    file: Path, svc: Any, env: Mapping[str, str], depth: int = 0
) -> list[str]:
    """A service's profiles with those it `extends` (compose-go merges the two lists, so a
    service extending a profiled one is profiled too: zabbix's compose files do this)."""
    if not isinstance(svc, dict) or depth > 10:
        return []
    own = svc.get("profiles")
    out = [interpolate(str(p), env).strip() for p in own] if isinstance(own, list) else []
    ext = svc.get("extends")
    base_name, base_file = (ext, file) if isinstance(ext, str) else (None, file)
    if isinstance(ext, dict):
        base_name = ext.get("service")
        if isinstance(ext.get("file"), str):
            base_file = (file.parent / interpolate(ext["file"], env)).resolve()
    if not isinstance(base_name, str) or not base_file.is_file():
        return out
    try:
        doc = _yaml().load(base_file.read_text(errors="replace"))
    except Exception:
        return out
    base = (doc.get("services") or {}).get(base_name) if isinstance(doc, dict) else None
    inherited = _profiles_with_extends(base_file, base, env, depth + 1)
    return list(dict.fromkeys([*inherited, *out]))


def runs(proj: Project, service: str) -> bool:
    """Whether `docker compose up` starts the service: no profiles, or one of them enabled
    by COMPOSE_PROFILES (the project's .env here; the benchmark's environment is clean).
    A new user's desired file names the services that run."""
    wanted = proj.profiles.get(service)
    # compose-go keeps empty names: unset, it enables the empty profile
    enabled = {p.strip() for p in proj.env.get("COMPOSE_PROFILES", "").split(",")}
    return not wanted or "*" in enabled or bool(enabled & set(wanted))


def tag_for(image: str | None, env: Mapping[str, str]) -> str:
    """The tag a new user writes: the image's own, `latest` without one, `v1` for a
    service that only builds (or whose tag cannot be written in desired/)."""
    if image is None:
        return "v1"
    ref = interpolate(image, env).strip()
    if not ref:
        return "v1"
    digest = ""
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    slash, colon = ref.rfind("/"), ref.rfind(":")
    tag = ref[colon + 1 :] if colon > slash else ""
    if digest and DIGEST_RE.match(digest):
        return f"{tag}@{digest}" if tag and TAG_RE.match(tag) else digest
    if not tag:
        return "latest"
    return tag if TAG_RE.match(tag) else "v1"


# ---------------------------------------------------------------------------------------
# Running berth validate


def stage(proj: Project, tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    """tmp/root/<project>/ (the copy) and tmp/desired/<project>.yaml; desired/ outside the
    compose root so that no bind source of the project (`..:/x`) can contain it."""
    root = tmp / "root"
    desired = tmp / "desired"
    dest = root / proj.name
    shutil.copytree(proj.path, dest, symlinks=True)
    desired.mkdir(parents=True)
    tags = {s: tag_for(img, proj.env) for s, img in proj.services.items() if runs(proj, s)}
    rels = [os.path.relpath(dest / f, desired) for f in proj.compose_files]
    lines = [f"compose: {json.dumps(rels[0])}"] if len(rels) == 1 else ["compose:"]
    if len(rels) > 1:
        lines += [f"  - {json.dumps(r)}" for r in rels]
    lines.append("services:" if tags else "services: {}")
    for svc, tag in tags.items():
        lines += [f"  {json.dumps(svc)}:", f"    tag: {json.dumps(tag)}"]
    (desired / f"{proj.name}.yaml").write_text("\n".join(lines) + "\n")
    return root, desired, tags


def clean_env() -> dict[str, str]:
    """Berth's environment wins over .env in interpolation: give it nothing of ours."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONDONTWRITEBYTECODE")
    return {k: os.environ[k] for k in keep if k in os.environ}


CRASH = "berth crashed"


def validate(root: Path, desired: Path) -> tuple[bool, list[dict[str, Any]], str]:
    """(accepted, problems, stderr); a run without a JSON answer is one problem whose
    field is CRASH (an exception in Berth is not a refusal of the compose file)."""
    # `python -m controller` of the tree this script is in (PYTHONPATH), whatever checkout
    # the venv's editable install points at: `python OTHER/bench/compose_adoption.py`
    # measures OTHER.
    cmd = [sys.executable, "-m", "controller", "--desired", str(desired)]
    cmd += ["--compose-root", str(root), "validate", "--json"]
    env = {**clean_env(), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        msg = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}, no output"])[-1]
        return False, [{"file": None, "line": None, "field": CRASH, "message": msg}], proc.stderr
    if data.get("valid") and proc.returncode == 0:
        return True, [], ""
    return False, list(data.get("problems") or []), proc.stderr


# ---------------------------------------------------------------------------------------
# Grouping refusals


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
_PATHLIKE = re.compile(r"(?<![\w.])/[^\s,;:)]+")


def reason_of(problem: Mapping[str, Any], services: Sequence[str]) -> str:
    """`<field with service names, list indices and user keys generalised>: <message
    with quoted values, paths and numbers generalised>`, cut at the first ';' or '('."""
    fld = str(problem.get("field") or "")
    if fld == CRASH:
        return f"{CRASH}: {problem.get('message')}"[:160]
    parts = [re.sub(r"\[\d+\]", "[]", p) for p in fld.split(".")] if fld else []
    if len(parts) > 1 and parts[0] in ("services", "networks", "volumes", "secrets", "configs"):
        parts[1] = "*" + ("[]" if parts[1].endswith("[]") else "")
    for i in range(1, len(parts)):
        if parts[i - 1] in FREE_FORM_PARENTS:
            parts[i] = "*"
    out = parts
    msg = str(problem.get("message") or "")
    for svc in sorted(services, key=len, reverse=True):
        msg = msg.replace(f"'{svc}'", "'…'")
    msg = _PATHLIKE.sub("PATH", msg)
    msg = _QUOTED.sub("'…'", msg)
    msg = _NUMBER.sub("N", msg)
    msg = re.split(r"[;(]", msg, maxsplit=1)[0].strip()
    if len(msg) > 110:
        msg = msg[:107] + "..."
    return f"{'.'.join(out)}: {msg}" if out else msg


def format_problem(problem: Mapping[str, Any], base: str) -> str:
    file = str(problem.get("file") or "")
    if file.startswith(base):
        file = file[len(base) :].lstrip("/")
    loc = f"{file}:{problem['line']}" if problem.get("line") else file
    fld = f" {problem['field']}:" if problem.get("field") else ""
    return f"{loc}:{fld} {problem.get('message')}".strip()


# ---------------------------------------------------------------------------------------
# Silent ignores: values written in the compose file that nothing translated carries


_WORD = re.compile(r"[A-Za-z0-9]+")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$", re.IGNORECASE)
_UNIT_NS = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "µs": 1e3, "ns": 1.0}
_SIZE_MULT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def _numbers_of(text: str) -> set[str]:
    out: set[str] = set()
    if _DURATION.match(text):
        ns = sum(float(n) * _UNIT_NS[u] for n, u in _DURATION_PART.findall(text))
        out |= {str(int(ns)), str(int(ns / 1e9)), repr(ns / 1e9), str(int(ns / 1e6))}
    m = _SIZE.match(text)
    if m and (m.group(2) or m.group(3)):
        out.add(str(int(float(m.group(1)) * _SIZE_MULT[m.group(2).lower()])))
    try:
        f = float(text)
        out |= {str(int(f * 1e9)), str(int(f * 1024)), str(int(f))}
    except ValueError:
        pass
    return out


# compose words the Engine API spells differently (deploy.restart_policy.condition)
_SYNONYMS = {"none": {"no"}, "any": {"always", "unless"}}

# values whose translation is spelled by where it goes, not by the value: a long-syntax
# bind becomes a `src:dst:ro|rw` string in HostConfig.Binds, as compose's toBindString
# does (pinned by tests/unit/test_compose_translate.py::test_volumes and
# test_compose_host_opts.py::test_long_syntax_bind_follows_create_host_path)
_SPELLED_BY_PLACE: dict[tuple[str, ...], dict[Any, set[str]]] = {
    ("volumes", "[]", "type"): {"bind": {"binds"}},
    ("volumes", "[]", "read_only"): {True: {"ro"}, False: {"rw"}},
}


def atoms(value: Any) -> set[str]:
    if isinstance(value, bool):
        return {str(value).lower()}
    text = str(value)
    words = {w.lower() for w in _WORD.findall(text)}
    for w in list(words):
        words |= _SYNONYMS.get(w, set())
    return words | _numbers_of(text.strip())


def leaves(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        if not node:
            yield path, None
        for k, v in node.items():
            ks = str(k)
            if ks.startswith("x-") or ks == "<<":
                continue
            yield from leaves(v, (*path, ks))
    elif isinstance(node, list):
        for v in node:
            yield from leaves(v, (*path, "[]"))
    else:
        yield path, node


def body_atoms(obj: Any) -> set[str]:
    text = json.dumps(obj, default=_default, sort_keys=True)
    out = {w.lower() for w in _WORD.findall(text)}
    out |= {m.group(0) for m in re.finditer(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", text)}
    return out


def _default(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, Mapping):
        return dict(o)
    return str(o)


def _dotted(path: Sequence[str]) -> str:
    return ".".join(path).replace(".[]", "[]")


# values translated into something other than words of the value (pinned by unit tests)
_DEFAULTS = {
    ("services.*.deploy.mode", "replicated"),  # compose's default: nothing to translate
    ("services.*.deploy.mode", "global"),  # ServiceSpec.one_per_host, one replica
}


def _unexplained(key: str, value: Any) -> bool:
    """A value not found in the translation is suspect unless Berth documents the key as
    having no effect (the schema-coverage table, tests/unit/compose_schema_context.py, and
    docs/compose.md) or it is compose's default."""
    from tests.unit.compose_schema_context import NO_EFFECT

    return key not in NO_EFFECT and (key, value) not in _DEFAULTS


def suspected_ignores(proj: Project, root: Path, desired: Path) -> list[str]:
    from controller.adapters.files import load_config

    cfg = load_config(str(desired), clean_env(), root=str(root))
    stacks = list(cfg.stacks.values())
    if not stacks:
        return []
    stack = stacks[0]
    svc_atoms = {name: body_atoms(spec) for name, spec in stack.services.items()}
    top_atoms = body_atoms({"networks": stack.networks, "volumes": stack.volumes})
    top_atoms |= set().union(*svc_atoms.values()) if svc_atoms else set()
    found: list[str] = []
    # a value a later file overrides is not ignored: check each service key in its last file
    last_file: dict[tuple[str, str], str] = {}
    for rel, doc in proj.docs:
        for svc, body in (doc.get("services") or {}).items():
            for key in body if isinstance(body, dict) else {}:
                last_file[(str(svc), str(key))] = rel
    for rel, doc in proj.docs:
        for svc, body in (doc.get("services") or {}).items():
            if not isinstance(body, dict) or str(svc) not in svc_atoms:
                continue
            have = svc_atoms[str(svc)]
            for path, value in leaves(body, ()):
                if path[0] in NOT_IN_BODY or last_file.get((str(svc), path[0])) != rel:
                    continue
                if value is None and path[0] == "environment":
                    continue  # `KEY:` passes the variable through when set: none is set here
                want = set()
                if value is not None:
                    want = atoms(interpolate(value, proj.env) if isinstance(value, str) else value)
                    want |= _SPELLED_BY_PLACE.get(path, {}).get(value, set())
                parent = path[-2] if len(path) > 1 else path[0]
                if parent in FREE_FORM_PARENTS or (parent == "[]" and path[0] == "networks"):
                    want |= atoms(path[-1])
                if path[0] == "networks":  # a network key stands for its Docker name
                    named = path[1] if len(path) > 1 and path[1] != "[]" else value
                    net = stack.networks.get(str(named))
                    want |= atoms(net.name) if net is not None else set()
                key = _dotted(("services", "*", *path))
                if want and not (want & have) and _unexplained(key, value):
                    found.append(key)
        for section in ("networks", "volumes", "secrets", "configs"):
            for path, value in leaves(doc.get(section) or {}, (section,)):
                if len(path) < 3 or value is None:
                    continue
                want = atoms(interpolate(value, proj.env) if isinstance(value, str) else value)
                if path[-2] in FREE_FORM_PARENTS:
                    want |= atoms(path[-1])
                key = _dotted((section, "*", *path[2:]))
                if want and not (want & top_atoms) and _unexplained(key, value):
                    found.append(key)
    return found


# ---------------------------------------------------------------------------------------


def run_project(proj: Project, workdir: str) -> Outcome:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="berth-adopt-", dir=workdir) as tmp_s:
        tmp = Path(tmp_s)
        root, desired, tags = stage(proj, tmp)
        ok, problems, _stderr = validate(root, desired)
        names = list(proj.services)
        out = Outcome(
            corpus=proj.corpus,
            project=proj.name,
            services=len(names),
            accepted=ok,
            crashed=any(p.get("field") == CRASH for p in problems),
            problems=[{**p, "text": format_problem(p, str(root))} for p in problems],
            reasons=sorted({reason_of(p, names) for p in problems}),
            tags=tags,
        )
        if ok:
            try:
                out.suspected_ignores = suspected_ignores(proj, root, desired)
                out.ignore_check = "done"
            except Exception as exc:
                out.ignore_check = f"error: {type(exc).__name__}: {exc}"[:200]
    out.seconds = time.monotonic() - start
    return out


def project_dirs(corpus: Path) -> list[Path]:
    return sorted(
        p
        for p in corpus.iterdir()
        if p.is_dir() and not p.name.startswith((".", "_")) and compose_files_of(p)
    )


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "controller")
    return f"{head} (controller/ has uncommitted changes)" if dirty else head


def pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f} %" if d else "n/a"


def is_holdout(corpus: str) -> bool:
    return Path(corpus).name.endswith("holdout")


def render(
    outcomes: Sequence[Outcome],
    corpora: Sequence[str],
    command: str,
    took: float,
    *,
    reveal: bool = False,
) -> str:
    """The Markdown section. A holdout corpus (directory name ending in `holdout`) shows
    counts only, never its project names or refusal texts, unless `reveal`."""
    hidden = {c for c in corpora if is_holdout(c) and not reveal}
    lines = ["## Compose adoption (real-world compose files)", ""]
    lines.append(
        "Each project's compose file(s) from a public repository, adopted with a desired/ file "
        "alone: one desired file naming every service with the tag a new user would write "
        "(its image's tag; `latest` when it has none; `v1` when it only builds), "
        "`berth validate --json` against a temporary copy (no Docker). The corpora live "
        "outside this repository (licensing; sources, commits and every step beyond copying "
        "in each corpus's SOURCES.md). The holdout is not looked at while fixing, so it is "
        "the honest number: below it shows counts only."
    )
    lines += [
        "",
        "| corpus | projects | services | accepted | refused | Berth crashed | adopted | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in corpora:
        rows = [o for o in outcomes if o.corpus == c]
        lines.append(_split_row(f"`{c}`", rows, verdict=True))
    if len(corpora) > 1:
        lines.append(_split_row("all", outcomes, verdict=False))
    lines += _reason_table(outcomes, corpora, hidden)
    lines += _ignore_table(outcomes, hidden)
    lines += ["", "<details><summary>Per project</summary>", ""]
    lines += ["| corpus | project | services | result | first problems |", "|---|---|---|---|---|"]
    for o in outcomes:
        if o.corpus in hidden:
            continue
        shown = "; ".join(p["text"] for p in o.problems[:2])
        more = f" (+{len(o.problems) - 2} more)" if len(o.problems) > 2 else ""
        res = "accepted" if o.accepted else ("Berth crashed" if o.crashed else "refused")
        if o.suspected_ignores:
            res += f", {len(o.suspected_ignores)} suspected ignores"
        lines.append(
            f"| {Path(o.corpus).name} | {o.project} | {o.services} | {res} | {_md(shown)}{more} |"
        )
    lines += ["", "</details>", ""]
    lines.append(
        f"_Section added on {dt.datetime.now(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} by "
        f"`{command}` at {git_commit()} ({took:.0f} s; no Docker)._"
    )
    return "\n".join(lines) + "\n"


def _reason_table(
    outcomes: Sequence[Outcome], corpora: Sequence[str], hidden: set[str]
) -> list[str]:
    """Reasons refusing exactly the same (visible) projects share a row (a build-only service
    gets two problems, say); rows in the order that adopts the most visible projects first
    (greedy), with the adoption that fixing every row so far would reach."""
    visible = [o for o in outcomes if o.corpus not in hidden]
    key = {id(o): f"{o.corpus}/{o.project}" for o in outcomes}
    by_reason: dict[str, set[str]] = defaultdict(set)
    hidden_by_reason: Counter[str] = Counter()
    for o in outcomes:
        for r in o.reasons:
            if o.corpus in hidden:
                hidden_by_reason[r] += 1
            else:
                by_reason[r].add(key[id(o)])
    groups: dict[frozenset[str], list[str]] = defaultdict(list)
    for r, projs in by_reason.items():
        groups[frozenset(projs)].append(r)
    problem_count: Counter[str] = Counter()
    for o in visible:
        for p in o.problems:
            problem_count[reason_of(p, list(o.tags))] += 1
    refused = {key[id(o)]: set(o.reasons) for o in visible if not o.accepted}
    fixed: set[str] = set()
    adopted = sum(o.accepted for o in visible)
    shown = [c for c in corpora if c not in hidden]
    per_corpus = f" ({' + '.join(Path(c).name for c in shown)})" if len(shown) > 1 else ""
    hidden_col = " | holdout projects" if hidden else ""
    lines = [
        "",
        "Refusal reasons"
        + (f" of {', '.join(Path(c).name for c in shown)}" if hidden else "")
        + ": each problem's field (service names, list indices and user keys "
        "generalised) and message (quoted values, paths, numbers generalised, cut at the "
        "first `;` or `(`); reasons that refuse exactly the same projects share a row. "
        "*projects*: refused projects with the reason; *sole*: refused for that row alone; "
        "*if fixed*: adoption once this row and every row above it are fixed (rows ordered "
        "to adopt the most projects first)"
        + (
            "; *holdout projects*: how many holdout projects the same reason refuses"
            if hidden
            else ""
        )
        + ".",
        "",
        f"| reason | projects{per_corpus} | sole | problems | if fixed{hidden_col} | e.g. |",
        "|---|---|---|---|---|---|" + ("---|" if hidden else ""),
    ]
    remaining = dict(groups)
    while remaining:
        gains = []
        for members, rs in remaining.items():
            after = fixed | set(rs)
            unlocked = sum(1 for p in members if refused.get(p, set()) <= after)
            gains.append((-unlocked, -len(members), sorted(rs)[0], members))
        chosen = min(gains)[3]
        rs = remaining.pop(chosen)
        sole = sum(1 for p in chosen if refused.get(p, set()) <= set(rs))
        fixed |= set(rs)
        adopted_now = adopted + sum(1 for r in refused.values() if r <= fixed)
        split = ""
        if len(shown) > 1:
            first = sum(p.startswith(shown[0] + "/") for p in chosen)
            split = f" ({first} + {len(chosen) - first})"
        examples = ", ".join(sorted(p.rsplit("/", 1)[1] for p in chosen)[:3])
        reason = " + ".join(f"`{_md(r)}`" for r in sorted(rs))
        held = f" | {max(hidden_by_reason[r] for r in rs)}" if hidden else ""
        lines.append(
            f"| {reason} | {len(chosen)}{split} | {sole} | "
            f"{sum(problem_count[r] for r in rs)} | {pct(adopted_now, len(visible))}{held} | "
            f"{_md(examples)} |"
        )
    if hidden:
        unseen = {r for r in hidden_by_reason if r not in by_reason}
        n = sum(1 for o in outcomes if o.corpus in hidden and any(r in unseen for r in o.reasons))
        lines += [
            "",
            f"Holdout: {n} projects are refused (also) for {len(unseen)} reasons that no row "
            "above has (texts withheld).",
        ]
    return lines


def _ignore_table(outcomes: Sequence[Outcome], hidden: set[str]) -> list[str]:
    checked = [o for o in outcomes if o.ignore_check == "done"]
    errored = [o for o in outcomes if o.ignore_check.startswith("error")]
    sus: Counter[str] = Counter()
    sus_projects: dict[str, set[str]] = defaultdict(set)
    for o in checked:
        for k in o.suspected_ignores:
            sus[k] += 1
            sus_projects[k].add("(holdout)" if o.corpus in hidden else o.project)
    n_projects = sum(1 for o in checked if o.suspected_ignores)
    lines = [
        "",
        "Silent ignores (target 0): `berth validate` cannot print its translation, so the "
        f"{len(checked)} accepted projects were loaded in-process and every value each compose "
        "service (and top-level network, volume, secret, config) writes was looked for in "
        "Berth's translation "
        "(`ServiceSpec`; the stack's networks and volumes: words, numbers, durations and sizes "
        f"converted; loose on purpose). Suspected: **{sum(sus.values())}** values in "
        f"**{n_projects}** projects"
        + (f"; check failed for {len(errored)} ({_md(errored[0].ignore_check)})" if errored else "")
        + ".",
    ]
    if sus:
        lines += ["", "| compose key (suspected dropped) | values | projects |", "|---|---|---|"]
        for k, n in sus.most_common(25):
            lines.append(f"| `{_md(k)}` | {n} | {_md(', '.join(sorted(sus_projects[k])[:4]))} |")
    return lines


def _split_row(label: str, rows: Sequence[Outcome], *, verdict: bool) -> str:
    acc = sum(o.accepted for o in rows)
    crashed = sum(o.crashed for o in rows)
    p = 100.0 * acc / len(rows) if rows else 0.0
    met = "**met**" if rows and p >= TARGET_PCT else "**NOT met**"
    target = f"≥ {TARGET_PCT:.0f} %: {met}" if verdict else ""
    return (
        f"| {label} | {len(rows)} | {sum(o.services for o in rows)} | {acc} | "
        f"{len(rows) - acc - crashed} | {crashed} | {pct(acc, len(rows))} | {target} |"
    )


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("corpora", nargs="*", default=list(DEFAULT_CORPORA))
    ap.add_argument("--no-write", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--json", metavar="FILE", help="also write every outcome as JSON")
    ap.add_argument(
        "--reveal-holdout",
        action="store_true",
        help="name holdout projects and their refusal texts too (off: counts only)",
    )
    ap.add_argument(
        "--workdir",
        default="/var/tmp",
        help="where the temporary copies go (default /var/tmp: real compose files bind /tmp, "
        "and a bind source containing desired/ is refused)",
    )
    args = ap.parse_args(argv)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    corpora = [str(Path(c).resolve()) for c in args.corpora]
    outcomes: list[Outcome] = []
    for c in corpora:
        for path in project_dirs(Path(c)):
            proj = read_project(c, path)
            o = run_project(proj, args.workdir)
            outcomes.append(o)
            mark = "ok " if o.accepted else ("ERR" if o.crashed else "NO ")
            extra = "" if o.accepted else f"  {o.problems[0]['text'] if o.problems else ''}"
            line = f"{mark}{Path(c).name}/{o.project} ({o.services} svc){extra}"
            if is_holdout(c) and not args.reveal_holdout:
                line = f"{mark}{Path(c).name}/#{len(outcomes)}"
            print(line[:200], file=sys.stderr)
    cmd = ".venv/bin/python bench/compose_adoption.py"
    if args.corpora != list(DEFAULT_CORPORA):
        cmd += " " + " ".join(args.corpora)
    took = time.monotonic() - start
    section = render(outcomes, corpora, cmd, took, reveal=args.reveal_holdout)
    print(section)
    if args.json:
        Path(args.json).write_text(
            json.dumps([dataclasses.asdict(o) for o in outcomes], indent=2, default=str)
        )
    if not args.no_write:
        with RESULTS.open("a") as f:
            f.write("\n" + section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
