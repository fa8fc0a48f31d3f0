"""Bad input through the real command line: `validate`, `plan` and `apply` all exit 1 with
file, line and field, before any Docker call (DOCKER_HOST points at nothing here), and a
running stack is left untouched by an `apply` of a broken desired state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.shell.cli.main import main
from tests.unit import test_boundary as boundary
from tests.unit.test_bad_inputs import CASES, COMPOSE, DESIRED, Case, tree
from tests.unit.test_hostile_inputs import HOSTILE

NOWHERE = "tcp://127.0.0.1:1"  # any Docker call would fail with a connection error
FILE_CASES = [c for c in CASES + HOSTILE if c.file in (DESIRED, COMPOSE)]


def materialise(case: Case, root: Path) -> Path:
    for path, text in tree(case).items():
        target = root / path.removeprefix("/r/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (root / "desired/app.yaml").write_text(case.desired)
    return root / "desired"


def test_enough_cases() -> None:
    assert len(FILE_CASES) >= 50


@pytest.mark.parametrize("case", boundary.CASES, ids=[c.id for c in boundary.CASES])
@pytest.mark.parametrize("command", ["validate", "apply"])
def test_boundary_refused_through_the_cli(
    case: boundary.Case, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every way out of the operator's tree: exit 1, file:line and field, no Docker call,
    and not a byte of the refused file in the output."""
    _tree, root, place = boundary.real_tree(case, tmp_path)
    code = main(
        [
            "--desired",
            f"{root}/desired",
            "--state-dir",
            str(tmp_path / "state"),
            "--docker-host",
            NOWHERE,
            command,
        ]
    )
    out = capsys.readouterr()
    assert code == 1, out.err
    assert "invalid configuration" in out.err, out.err
    where = f"{place(case.file)}:{case.line}" if case.line else place(case.file)
    assert where in out.err and case.field in out.err and case.fragment in out.err, out.err
    assert boundary.SECRET not in out.err + out.out


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_rejected_with_location_and_no_docker(
    case: Case, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desired = materialise(case, tmp_path)
    code = main(
        [
            "--desired",
            str(desired),
            "--state-dir",
            str(tmp_path / "state"),
            "--docker-host",
            NOWHERE,
            command,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert "invalid configuration" in err, err  # a config error, not a Docker one
    name = Path(case.file).name
    where = f"{name}:{case.line}" if case.line else name
    assert where in err, err
    assert case.field in err, err


@pytest.mark.docker
def test_broken_apply_leaves_running_stack_alone(
    docker_client: Any,
    app_image: Any,
    tmp_stack: Any,
    project: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app_image("1.0.0")
    svc = {
        "image": "berth-test/app",
        "init": True,
        "x-berth": {"health": {"path": "/health", "port": 8000, "interval": "100ms"}},
    }
    s = tmp_stack({"services": {"api": svc}}, {"api": {"tag": "1.0.0"}})
    args = ["--desired", str(s.desired_dir), "--state-dir", str(s.state_dir)]
    assert main([*args, "apply"]) == 0
    sel = {"label": [f"com.docker.compose.project={project}"]}
    before = [(c.id, c.status) for c in docker_client.containers.list(all=True, filters=sel)]
    tmp_stack({"services": {"api": svc}}, {"api": {"tag": "1.0.0", "replicas": "two"}})
    assert main([*args, "apply"]) == 1
    assert "replicas" in capsys.readouterr().err
    after = [(c.id, c.status) for c in docker_client.containers.list(all=True, filters=sel)]
    assert after == before


def _console(desired: Path, state: Path, *args: str) -> list[str]:
    """The installed `berth` script: `entry`, which ends with os._exit."""
    return [
        str(Path(sys.executable).with_name("berth")),
        "--desired",
        str(desired),
        "--state-dir",
        str(state),
        "--docker-host",
        NOWHERE,
        *args,
    ]


def test_console_script_output_is_complete_when_piped(tmp_path: Path) -> None:
    """stdout is block-buffered in a pipe: `entry` flushes it before os._exit."""
    desired = materialise(FILE_CASES[0], tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    p = subprocess.run(
        _console(desired, tmp_path / "state", "validate", "--json"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert doc["valid"] is False and doc["problems"], doc


def test_console_script_reader_gone_is_no_traceback(tmp_path: Path) -> None:
    desired = materialise(FILE_CASES[0], tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    r, w = os.pipe()
    os.close(r)  # nobody will read: the first write (or the final flush) hits EPIPE
    try:
        p = subprocess.run(
            _console(desired, tmp_path / "state", "validate", "--json"),
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(w)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr, p.stderr


def test_a_warning_is_said_by_validate_and_plan_and_the_file_still_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What compose accepts and Berth follows (an unknown volume mode dropped) is valid,
    and said with its file, line and field: on validate's output, in its JSON, and on
    plan's stderr."""
    (tmp_path / "compose").mkdir()
    (tmp_path / "desired").mkdir()
    (tmp_path / "compose/docker-compose.yml").write_text(
        "services:\n  api:\n    image: reg.example/api\n    volumes:\n      - data:/d:roz\n"
        "volumes:\n  data: {}\n"
    )
    (tmp_path / "desired/app.yaml").write_text(
        "compose: ../compose/docker-compose.yml\nservices:\n  api: {tag: '1.0'}\n"
    )
    args = ["--desired", str(tmp_path / "desired"), "--state-dir", str(tmp_path / "state")]
    assert main([*args, "--docker-host", NOWHERE, "validate"]) == 0
    out = capsys.readouterr().out
    want = "docker-compose.yml:5: services.api.volumes[0]: unknown volume mode 'roz' ignored"
    assert "warning: " in out and want in out and "did you mean 'ro,z'?" in out, out
    assert main([*args, "--docker-host", NOWHERE, "validate", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True and len(doc["warnings"]) == 1 and want in doc["warnings"][0]
    main([*args, "--docker-host", NOWHERE, "plan"])  # fails at Docker; the warning comes first
    assert want in capsys.readouterr().err
