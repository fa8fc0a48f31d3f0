"""`berth run --git-*` flags: credentials never from the command line, the token taken out
of Berth's environment once read, bad values refused in one line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from controller.errors import BerthError
from controller.shell.cli import git_args
from controller.shell.cli.main import _parser


def parse(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["--state-dir", "/tmp/st", "run", *argv])


def test_token_from_env_is_removed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_GIT_TOKEN", "tok-1")
    src = git_args.source(parse("--git-url", "https://h/r.git"))
    assert src is not None and src.auth.token == "tok-1"
    assert "BERTH_GIT_TOKEN" not in os.environ
    assert src.checkout == "/tmp/st/git/checkout" and src.desired == "/tmp/st/git/checkout/desired"


def test_secret_files(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("tok-2\n")
    (tmp_path / "hook").write_text("s\n")
    tok, hook = str(tmp_path / "tok"), str(tmp_path / "hook")
    argv = ["--git-url", "https://h/r", "--git-token-file", tok, "--webhook-secret-file", hook]
    src = git_args.source(parse(*argv))
    assert src is not None and src.auth.token == "tok-2" and src.webhook_secret == b"s"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(BerthError, match="one non-empty line"):
        empty = str(tmp_path / "empty")
        git_args.source(parse("--git-url", "https://h/r", "--webhook-secret-file", empty))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--git-url", "https://u:tok@h/r"], "credentials"),
        (["--git-url", "https://h/r", "--git-path", ".."], "--git-path"),
        (["--git-url", "https://h/r", "--git-interval", "0"], "positive"),
        (["--git-url", "https://h/r", "--git-ssh-key", "/nonexistent"], "--git-ssh-key"),
        (["--webhook-secret-file", "/x"], "needs --git-url"),
    ],
)
def test_refused(argv: list[str], match: str) -> None:
    with pytest.raises(BerthError, match=match):
        git_args.source(parse(*argv))


def test_without_git_url_nothing_changes() -> None:
    assert git_args.source(parse()) is None
