"""The example compose files must be valid compose-spec files: Berth reads standard compose,
so anything it accepts in its own fixtures should also be what `docker compose` accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "compose-spec" / "compose-spec.json"
FIXTURES = REPO / "tests" / "fixtures" / "config"
COMPOSE_FILES = sorted(
    p
    for p in FIXTURES.rglob("*.yml")
    if "compose" in p.parts or p.name.startswith("docker-compose")
)


def _validator() -> Any:
    if not SCHEMA.exists():
        pytest.skip(f"compose-spec schema not found at {SCHEMA} (shared/ is not beside the repo)")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(
        schema
    )  # the file says draft-07 by an URL jsonschema does not know


def test_fixtures_exist() -> None:
    assert COMPOSE_FILES, f"no compose fixtures under {FIXTURES}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=[p.name for p in COMPOSE_FILES])
def test_fixture_matches_compose_spec(path: Path) -> None:
    validator = _validator()
    doc = YAML(typ="safe").load(path.read_text())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_file() -> None:
    """Guards the check itself: a file the schema must refuse is refused."""
    validator = _validator()
    doc = {"services": {"api": {"image": "x", "ports": {"not": "a list"}}}}
    assert list(validator.iter_errors(doc))


def test_vendored_schema_is_current() -> None:
    """The schema the tests use is the one the project was given (when it is beside us)."""
    given = REPO.parent / "shared" / "compose-spec" / "compose-spec.json"
    if not given.exists():
        pytest.skip(f"{given} is not beside the repository (CI clone): nothing to compare")
    assert json.loads(given.read_text()) == json.loads(SCHEMA.read_text())
