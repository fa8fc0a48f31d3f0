"""Issue 12: every key of the compose-spec schema is translated or refused, none silently
ignored.

The schema is walked (top-level properties, the service definition and every definition it
reaches through `$ref`, `oneOf`/`anyOf`, `patternProperties`, list items; `x-*` skipped).
For each property path a compose file with the key is loaded next to the same file without
it, and one of these must hold:

- refused: `load_stack` raises a ConfigError with a problem on that key (or on an ancestor
  refused as a whole, such as `develop`);
- translated: the StackSpec (create bodies, networks, depends_on, build, files, top-level
  networks and volumes...) differs from the one without the key;
- NO_EFFECT: the key is listed with the reason it rightly changes nothing.

A key added to the schema that nobody handled fails here with its path.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from controller.core.compose import load_stack
from controller.errors import ConfigError, Problem
from tests.fakes_files import MemoryTree
from tests.unit.compose_render import render_stack
from tests.unit.compose_schema_context import (
    BASE,
    COMPOSE,
    CONTEXT,
    DELETE,
    ENVIRON,
    FILES,
    NAMES,
    NO_EFFECT,
    ROOT,
    ROOT_DIR,
)
from tests.unit.compose_schema_samples import SAMPLES

SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "compose-spec" / "compose-spec.json"


# --- the walk -----------------------------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    if not SCHEMA.exists():
        pytest.skip(f"compose-spec schema not found at {SCHEMA} (shared/ is not beside the repo)")
    data: dict[str, Any] = json.loads(SCHEMA.read_text())
    return data


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = schema()["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _walk(
    node: dict[str, Any], path: str, out: dict[str, list[dict[str, Any]]], seen: frozenset[str]
) -> None:
    if "$ref" in node:
        if node["$ref"] in seen:
            return
        seen = seen | {node["$ref"]}
    node = _resolve(node)
    for alternatives in ("oneOf", "anyOf", "allOf"):
        for alt in node.get(alternatives, []):
            _walk(alt, path, out, seen)
    for key, sub in node.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        out.setdefault(here, []).append(sub)
        _walk(sub, here, out, seen)
    for pattern, sub in node.get("patternProperties", {}).items():
        if pattern != "^x-":
            _walk(sub, f"{path}.*", out, seen)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        _walk(extra, f"{path}.*", out, seen)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], f"{path}[]", out, seen)


@cache
def schema_paths() -> dict[str, list[dict[str, Any]]]:
    """Every property path -> the schema nodes that describe it."""
    out: dict[str, list[dict[str, Any]]] = {}
    _walk(schema(), "", out, frozenset())
    return out


def generated(path: str) -> Any:
    """A value of the path's first schema type, for keys without a SAMPLES entry."""
    node = _resolve(schema_paths()[path][0])
    while "type" not in node and (alternatives := node.get("oneOf") or node.get("anyOf")):
        node = _resolve(alternatives[0])
    kind = node.get("type", "string")
    kind = next(k for k in kind if k != "null") if isinstance(kind, list) else kind
    values = {"string": "x", "integer": 1, "number": 1, "boolean": True, "array": ["x"]}
    return values.get(kind, {"x": "y"})


def sample(path: str) -> Any:
    return SAMPLES[path] if path in SAMPLES else generated(path)


# --- the two files ------------------------------------------------------------------------

_TOKEN = re.compile(r"[^.\[\]]+|\[\]")


def segments(path: str) -> list[str]:
    return _TOKEN.findall(path)


def _merge(node: Any, patch: Any) -> Any:
    if isinstance(node, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            if value is DELETE:
                node.pop(key, None)
            else:
                node[key] = _merge(node.get(key), value)
        return node
    if isinstance(node, list) and isinstance(patch, list):
        for i, value in enumerate(patch):
            if i < len(node):
                node[i] = _merge(node[i], value)
            else:
                node.append(_merge(None, value))
        return node
    return copy.deepcopy(patch)


def _child(node: Any, key: str | int, following: str) -> Any:
    empty: Any = [] if following == "[]" else {}
    if isinstance(node, list):
        if not node or not isinstance(node[0], dict | list):
            node[:] = [empty]
        return node[0]
    if not isinstance(node.get(key), dict | list):
        node[key] = empty
    return node[key]


@dataclass(frozen=True)
class Case:
    path: str
    with_key: dict[str, Any]
    without: dict[str, Any]
    concrete: tuple[str, ...]  # the fields Berth may name for the key (it, its ancestors)


def _join(segs: list[str]) -> str:
    return "".join(s if s == "[]" else f".{s}" for s in segs).lstrip(".")


def _keys(segs: list[str]) -> list[str | int]:
    """The concrete key of each segment: `*` by NAMES, `[]` the first item."""
    keys: list[str | int] = []
    for i, seg in enumerate(segs):
        prefix = _join(segs[:i])
        keys.append(0 if seg == "[]" else NAMES.get(prefix, "k") if seg == "*" else seg)
    return keys


def _field(keys: list[str | int]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")


def case(path: str) -> Case:
    segs = segments(path)
    keys = _keys(segs)
    doc: dict[str, Any] = copy.deepcopy(BASE)
    node: Any = doc
    fields: list[str] = []
    for i, seg in enumerate(segs):
        prefix = _join(segs[: i + 1])
        if seg not in ("*", "[]") and prefix != "services":
            fields.append(_field(keys[: i + 1]))
        if i < len(segs) - 1:
            node = _child(node, keys[i], segs[i + 1])
            _merge(node, CONTEXT.get(prefix, {}))
        _merge(doc, ROOT.get(prefix, {}))
    without = copy.deepcopy(doc)
    _leaf(doc, keys, sample(path))
    _leaf(without, keys, DELETE)
    return Case(path, doc, without, tuple(fields))


def _leaf(doc: dict[str, Any], keys: list[str | int], value: Any) -> None:
    node: Any = doc
    for key in keys[:-1]:
        node = node[key]
    if value is DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = copy.deepcopy(value)


# --- the verdict --------------------------------------------------------------------------


def outcome(doc: dict[str, Any]) -> dict[str, Any] | list[Problem]:
    tree = MemoryTree(FILES, root=ROOT_DIR, desired=f"{ROOT_DIR}/desired")
    text = json.dumps(doc)  # JSON is YAML
    try:
        stack = load_stack(project=None, files=[(COMPOSE, text)], environ=ENVIRON, sources=tree)
    except ConfigError as exc:
        return exc.problems
    return render_stack(stack)


def verdict(path: str) -> tuple[str, str]:
    """("refused" | "translated" | "no effect" | "ERROR", detail)."""
    c = case(path)
    got = outcome(c.with_key)
    if isinstance(got, list):
        key = c.concrete[-1]
        inside = (f"{key}.", f"{key}[")
        named = [p for p in got if p.field in c.concrete or p.field.startswith(inside)]
        if named:
            return "refused", f"{named[0].field}: {named[0].message}"
        return "ERROR", "refused, but no problem names the key: " + "; ".join(map(str, got))
    before = outcome(c.without)
    if before != got:
        return "translated", ""
    return "no effect", ""


def all_verdicts() -> Iterator[tuple[str, str, str]]:
    for path in sorted(schema_paths()):
        yield (path, *verdict(path))


# --- the tests ----------------------------------------------------------------------------


def test_walker_finds_the_schema() -> None:
    """Guards the walk itself: a walker that finds nothing would make the test below pass."""
    paths = set(schema_paths())
    assert len(paths) > 250, len(paths)
    known = {
        "version",
        "include[].project_directory",
        "services.*.deploy.resources.reservations.devices[].capabilities",
        "services.*.volumes[].bind.propagation",
        "services.*.volumes[].tmpfs.mode",
        "services.*.ulimits.*.soft",
        "services.*.networks.*.ipv4_address",
        "services.*.depends_on.*.condition",
        "services.*.healthcheck.start_interval",
        "services.*.build.secrets[].mode",
        "services.*.develop.watch[].exec.command",
        "networks.*.ipam.config[].aux_addresses",
        "secrets.*.external.name",
    }
    assert known <= paths, sorted(known - paths)
    assert not any(p.split(".")[-1].startswith("x-") for p in paths)


def test_tables_name_schema_paths() -> None:
    """A stale SAMPLES/CONTEXT/ROOT/NO_EFFECT entry points at nothing: fix or drop it."""
    paths = set(schema_paths())
    prefixes = {_join(segments(p)[:i]) for p in paths for i in range(1, len(segments(p)) + 1)}
    for table in (SAMPLES, NO_EFFECT):
        assert set(table) <= paths, sorted(set(table) - paths)
    for table in (CONTEXT, ROOT, NAMES):
        stale = set(table) - prefixes
        assert not stale, sorted(stale)
    assert all(reason.strip() for reason in NO_EFFECT.values())


@pytest.mark.parametrize("path", sorted(SAMPLES), ids=str)
def test_sample_files_are_valid_compose(path: str) -> None:
    """The sample file is one `docker compose` accepts, so a refusal is Berth's own."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(schema())
    doc = case(path).with_key
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert not errors, errors


def test_verdicts_tell_the_three_cases_apart() -> None:
    """Guards the comparison: an ignored key, a translated one and a refused one."""
    assert verdict("version")[0] == "no effect"
    assert verdict("services.*.init")[0] == "translated"
    assert verdict("services.*.use_api_socket")[0] == "refused"


def test_every_schema_key_is_translated_or_refused() -> None:
    failures: list[str] = []
    for path, result, detail in all_verdicts():
        if result == "ERROR":
            failures.append(f"{path}: {detail}")
        elif result == "no effect" and path not in NO_EFFECT:
            failures.append(f"{path}: silently ignored (neither translated nor refused)")
        elif result != "no effect" and path in NO_EFFECT:
            failures.append(f"{path}: listed in NO_EFFECT but {result} ({detail}): drop it")
    assert not failures, "\n".join(failures)


if __name__ == "__main__":  # a table of every path and its verdict, for review
    for path, result, detail in all_verdicts():
        print(f"{result:10} {path}  {detail}")
