"""A configuration that cannot be built at all leaves the daemon running on its last good
state, with every desired file reported invalid (the watcher thread must not die)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.errors import ConfigError
from controller.shell.daemon import config_source
from controller.shell.daemon.manager import Daemon
from controller.shell.wiring import Context


def _daemon(tmp_path: Path) -> Daemon:
    (tmp_path / "desired").mkdir()
    (tmp_path / "desired" / "a.yaml").write_text("compose: ../c.yml\n")
    ctx = Context(str(tmp_path / "desired"), str(tmp_path / "state"), "tcp://127.0.0.1:1")
    return Daemon(ctx, resync=1.0)


def test_an_unexpected_exception_marks_every_file_invalid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _daemon(tmp_path)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("an input nobody foresaw")

    monkeypatch.setattr(config_source, "load_config_partial", boom)
    partial = config_source.load_or_invalid(d.ctx.desired, None, known=())
    file = str(tmp_path / "desired" / "a.yaml")
    assert not partial.valid(file)
    assert "RuntimeError" in partial.problems[file][0].message
    assert partial.config.targets == ()


def test_a_compose_root_that_cannot_hold_the_boundary_stops_berth_run(tmp_path: Path) -> None:
    (tmp_path / "desired").mkdir()
    ctx = Context(str(tmp_path / "desired"), str(tmp_path / "state"), "tcp://127.0.0.1:1", "/")
    with pytest.raises(ConfigError, match="may not be /"):
        Daemon(ctx, resync=1.0).run("127.0.0.1:1")  # refused before anything binds


def test_a_configuration_warning_is_logged_once_not_at_every_resync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "c.yml").write_text(
        "services:\n  api:\n    image: reg.example/api\n    volumes: ['./d:/d:roz']\n"
    )
    d = _daemon(tmp_path)
    (tmp_path / "desired" / "a.yaml").write_text(
        "compose: ../c.yml\nservices:\n  api: {tag: '1.0'}\n"
    )
    with caplog.at_level("WARNING", logger="berth"):
        d.reload("start")
        d.reload("resync")
    said = [r.getMessage() for r in caplog.records if "unknown volume mode" in r.getMessage()]
    assert len(said) == 1 and "c.yml:4: services.api.volumes[0]" in said[0], said
    assert d.reconciler.config.targets, "the file is valid: the warning does not refuse it"
