"""DESIGN §1: the pure core touches nothing of the world; ports sit on the core alone;
adapters never reach up into the shell.

An AST test rather than import-linter so that the rules live next to their reasons and a
synthetic bad module proves the checker itself bites. Every import counts, including ones
under `if TYPE_CHECKING:`, inside functions, relative ones, and
`importlib.import_module("...")` / `__import__("...")` with a constant name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "controller"

# What a pure-core module must not import: the world (Docker, HTTP, the clock, the
# filesystem, processes, metrics, terminals) and the layers above it.
CORE_FORBIDDEN = (
    "controller.adapters",
    "controller.shell",
    "controller.ports",
    "docker",
    "requests",
    "urllib3",
    "urllib.request",
    "http.client",
    "httpx",
    "sqlite3",
    "socket",
    "subprocess",
    "time",
    "os",  # also os.path; `posixpath` (pure string functions) is allowed
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
    "prometheus_client",
    "watchfiles",
    "rich",
)

# ports.py is typing glue: Protocols over core types. controller.errors is allowed because
# the exceptions a port may raise are part of its contract (and errors.py is pure).
PORTS_ALLOWED = (
    "__future__",
    "typing",
    "typing_extensions",
    "collections.abc",
    "dataclasses",
    "enum",
    "abc",
    "controller.core",
    "controller.errors",
    "controller.task_ports",  # the ports of release tasks, smoke checks and hooks
)


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str  # glob relative to the controller package
    forbidden: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None  # when set, anything else is a violation

    def violations(self, imports: Iterable[tuple[str, int]]) -> list[str]:
        found = []
        for name, line in imports:
            if any(_within(name, bad) for bad in self.forbidden):
                found.append(f"line {line}: imports {name} (forbidden by rule {self.name!r})")
            elif self.allowed is not None and not any(_within(name, ok) for ok in self.allowed):
                found.append(f"line {line}: imports {name} (not allowed by rule {self.name!r})")
        return found


RULES = (
    Rule("core is pure", "core/**/*.py", forbidden=CORE_FORBIDDEN),
    # ports.py and task_ports.py (the ports of release tasks, smoke checks and hooks)
    Rule("ports depend on the core only", "*ports.py", allowed=PORTS_ALLOWED),
    Rule("adapters do not use the shell", "adapters/**/*.py", forbidden=("controller.shell",)),
    Rule(
        "rollout imports neither daemon nor cli",
        "shell/rollout/**/*.py",
        forbidden=("controller.shell.daemon", "controller.shell.cli"),
    ),
    Rule("daemon does not import cli", "shell/daemon/**/*.py", forbidden=("controller.shell.cli",)),
)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[str, int]]:
    """Absolute names of everything `source` imports, with line numbers.

    `from a import b` yields both `a` and `a.b` (b may be a submodule), so a rule on
    `controller.adapters` catches `from controller import adapters`.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(p for p in [*base_parts, node.module or ""] if p)
            else:
                base = node.module or ""
            yield base, node.lineno
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}", node.lineno
        elif isinstance(node, ast.Call):
            func = node.func
            dynamic = (isinstance(func, ast.Name) and func.id == "__import__") or (
                isinstance(func, ast.Attribute) and func.attr == "import_module"
            )
            if (
                dynamic
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield node.args[0].value, node.lineno


def check_source(rule: Rule, source: str, module: str, *, is_package: bool = False) -> list[str]:
    return rule.violations(imports_of(source, module, is_package=is_package))


def _cases() -> list[tuple[Rule, Path]]:
    cases = []
    for rule in RULES:
        for path in sorted(PACKAGE.glob(rule.pattern)):
            cases.append((rule, path))
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    ("rule", "path"),
    CASES,
    ids=[f"{rule.name}:{path.relative_to(ROOT)}" for rule, path in CASES],
)
def test_module_respects_layering(rule: Rule, path: Path) -> None:
    found = check_source(
        rule,
        path.read_text(),
        module_name(path),
        is_package=path.name == "__init__.py",
    )
    assert not found, f"{path.relative_to(ROOT)} breaks DESIGN §1:\n  " + "\n  ".join(found)


def test_every_rule_sees_modules() -> None:
    """A typo in a glob would make a rule vacuous; every rule must match something."""
    for rule in RULES:
        assert list(PACKAGE.glob(rule.pattern)), f"rule {rule.name!r} matches no file"


CORE = RULES[0]
PORTS = RULES[1]
ADAPTERS = RULES[2]
ROLLOUT = RULES[3]
DAEMON = RULES[4]

BAD_SOURCES = [
    (CORE, "import docker\n", "docker"),
    (CORE, "import os.path\n", "os.path"),
    (CORE, "from os import environ\n", "os"),
    (CORE, "import time as _t\n", "time"),
    (CORE, "from pathlib import Path\n", "pathlib"),
    (CORE, "import subprocess\n", "subprocess"),
    (CORE, "from prometheus_client import Counter\n", "prometheus_client"),
    (CORE, "from rich.console import Console\n", "rich"),
    (CORE, "from controller import adapters\n", "controller.adapters"),
    (CORE, "from controller.shell.rollout.executor import Executor\n", "controller.shell"),
    (CORE, "from ...adapters import docker_runtime\n", "controller.adapters"),
    (CORE, "from ...shell import cli\n", "controller.shell"),
    (CORE, "def f():\n    import httpx\n    return httpx\n", "httpx"),
    (
        CORE,
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sqlite3\n",
        "sqlite3",
    ),
    (CORE, "import importlib\nm = importlib.import_module('socket')\n", "socket"),
    (CORE, "watch = __import__('watchfiles')\n", "watchfiles"),
    (PORTS, "import docker\n", "docker"),
    (PORTS, "import json\n", "json"),
    (PORTS, "from controller.adapters.clock import SystemClock\n", "controller.adapters"),
    (ADAPTERS, "from controller.shell.rollout import executor\n", "controller.shell"),
    (ADAPTERS, "from ..shell.wiring import Context\n", "controller.shell"),
    (ROLLOUT, "from controller.shell.daemon.metrics import Metrics\n", "controller.shell.daemon"),
    (ROLLOUT, "from ..cli import commands\n", "controller.shell.cli"),
    (DAEMON, "from controller.shell.cli.commands import status_rows\n", "controller.shell.cli"),
    (DAEMON, "def f():\n    from ..cli import deploy\n", "controller.shell.cli"),
]


@pytest.mark.parametrize(("rule", "source", "culprit"), BAD_SOURCES)
def test_checker_rejects_a_violation(rule: Rule, source: str, culprit: str) -> None:
    # Synthetic modules placed where the rule applies (relative imports resolve from there).
    module = {
        CORE: "controller.core.compose.bad",
        PORTS: "controller.ports",
        ADAPTERS: "controller.adapters.bad",
        ROLLOUT: "controller.shell.rollout.bad",
        DAEMON: "controller.shell.daemon.bad",
    }[rule]
    found = check_source(rule, source, module)
    assert found, f"rule {rule.name!r} let through:\n{source}"
    assert any(culprit in v for v in found), found


GOOD_SOURCES = [
    (CORE, "import posixpath\nimport re\nfrom dataclasses import dataclass\n"),
    (CORE, "from controller.core.model import Target\nfrom controller.errors import Problem\n"),
    (CORE, "from .model import Target\nfrom ruamel.yaml import YAML\n"),
    (CORE, "import timeit_like_name\nimport osx_helpers\n"),  # prefixes match whole names
    (PORTS, "from __future__ import annotations\nfrom typing import Protocol\n"),
    (PORTS, "from collections.abc import Mapping\nfrom controller.core.model import Target\n"),
    (ADAPTERS, "import docker\nimport httpx\nfrom controller.ports import Clock\n"),
]


@pytest.mark.parametrize(("rule", "source"), GOOD_SOURCES)
def test_checker_accepts_clean_modules(rule: Rule, source: str) -> None:
    module = {
        CORE: "controller.core.model2",
        PORTS: "controller.ports",
        ADAPTERS: "controller.adapters.ok",
    }[rule]
    assert check_source(rule, source, module) == []


def test_relative_import_resolution() -> None:
    names = {n for n, _ in imports_of("from ..adapters import x\n", "controller.core.plan")}
    assert "controller.adapters" in names and "controller.adapters.x" in names
    names = {n for n, _ in imports_of("from . import y\n", "controller.core", is_package=True)}
    assert "controller.core.y" in names
