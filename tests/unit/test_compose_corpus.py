"""Issue 12: a corpus of realistic compose stacks, each with the exact result Berth must give.

Every directory under tests/fixtures/compose-corpus/ is one stack: `compose.yaml` (and the
files it needs: Dockerfiles, env files, secrets, included files), an optional `meta.json`
(`files`: the compose files in order, `environ`: the process environment, `project`: an
explicit project name) and `expected.json`, which holds either

- `{"accepted": ...}`: the StackSpec rendered by tests/unit/compose_render.py: for each
  service the Engine API create body, networks, depends_on, build, injected files...; or
- `{"refused": [...]}`: the exact `file:line: field: message` lines of the ConfigError.

The fixture directory is read into an in-memory tree at /srv/stack/app (compose root
/srv/stack), so the expectations do not depend on where the repository is checked out.

`BERTH_UPDATE_CORPUS=1 pytest tests/unit/test_compose_corpus.py` rewrites expected.json from
what Berth gives now. Review the diff against what `docker compose` sends (its
pkg/compose/create.go) before committing it: the files are the reference, not a snapshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from controller.core.compose import load_stack
from controller.errors import ConfigError
from tests.fakes_files import MemoryTree
from tests.unit.compose_render import render_stack

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fixtures" / "compose-corpus"
SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "compose-spec" / "compose-spec.json"
ROOT = "/srv/stack"
APP = f"{ROOT}/app"
NOT_IN_TREE = frozenset({"expected.json", "meta.json"})
FIXTURES = sorted(p for p in CORPUS.iterdir() if p.is_dir()) if CORPUS.is_dir() else []


def meta(fixture: Path) -> dict[str, Any]:
    path = fixture / "meta.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return data


def tree(fixture: Path) -> dict[str, str]:
    """Every file of the fixture at its place under /srv/stack/app."""
    return {
        f"{APP}/{p.relative_to(fixture).as_posix()}": p.read_text()
        for p in sorted(fixture.rglob("*"))
        if p.is_file() and p.name not in NOT_IN_TREE
    }


def compose_files(fixture: Path) -> list[str]:
    names: list[str] = meta(fixture).get("files", ["compose.yaml"])
    return names


def outcome(fixture: Path) -> dict[str, Any]:
    info = meta(fixture)
    files = tree(fixture)
    given = [(f"{APP}/{name}", files[f"{APP}/{name}"]) for name in compose_files(fixture)]
    sources = MemoryTree(files, root=ROOT, desired=f"{ROOT}/desired")
    try:
        stack = load_stack(
            project=info.get("project"),
            files=given,
            environ=info.get("environ", {}),
            sources=sources,
        )
    except ConfigError as exc:
        return {"refused": [str(p) for p in exc.problems]}
    # through JSON, so tuples and lists compare as the file holds them
    accepted: dict[str, Any] = json.loads(json.dumps(render_stack(stack)))
    return {"accepted": accepted}


def test_corpus_is_there() -> None:
    assert len(FIXTURES) >= 15, FIXTURES
    assert all((f / "compose.yaml").exists() for f in FIXTURES)
    kinds = [next(iter(json.loads((f / "expected.json").read_text()))) for f in FIXTURES]
    assert kinds.count("accepted") >= 12 and kinds.count("refused") >= 3, kinds


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture(fixture: Path) -> None:
    got = outcome(fixture)
    expected_file = fixture / "expected.json"
    if os.environ.get("BERTH_UPDATE_CORPUS") == "1":
        expected_file.write_text(json.dumps(got, indent=2) + "\n")
    expected = json.loads(expected_file.read_text())
    assert got == expected


def _validator() -> Any:
    if not SCHEMA.exists():
        pytest.skip(f"compose-spec schema not found at {SCHEMA} (shared/ is not beside the repo)")
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture_is_valid_compose(fixture: Path) -> None:
    """Every compose file of the corpus is one `docker compose` accepts (unless meta.json says
    `schema_invalid`), so what Berth accepts or refuses is standard compose."""
    validator = _validator()
    yaml = YAML(typ="safe")
    found = False
    for path in sorted(fixture.rglob("*.y*ml")):
        doc = yaml.load(path.read_text())
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
        if meta(fixture).get("schema_invalid"):
            found = found or bool(errors)
            continue
        assert not errors, f"{path.name}: {errors}"
    assert found or not meta(fixture).get("schema_invalid")
