"""`berth deploy/rollback --commit` on Berth's own checkout of a remote (made by the syncer
as `berth run --git-url` makes it), against a real git server (nginx + git-http-backend,
token auth), through the real command line: the commit lands on the remote branch and the
checkout follows; a push refused because the remote moved leaves the checkout at its
commit (nothing ahead of the remote, the next sync fast-forwards); an edit without
--commit is refused; the token shows in no command line, output or file."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters.git_remote import Auth
from controller.core.gitsync import SyncResult
from controller.ports import Outcome
from controller.shell.git_source import GitSource
from tests.integration.test_deploy_cli import COMPOSE, Repo
from tests.integration.test_git_source import Synced
from tests.support.berth import Result, berth_cmd
from tests.support.git_server import GitServer, git, git_http_server

PROJECT = "berthpush"
DESIRED = f"project: {PROJECT}\ncompose: ../compose/docker-compose.yml\nservices:\n"
DESIRED += '  api:\n    tag: "%s"   # pinned\n  synth-worker:\n    tag: 1.4.1\n'


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[GitServer]:
    with git_http_server(tmp_path / "server") as s:
        yield s


class Host:
    """The remote with a developer's clone, and Berth's checkout as the syncer made it."""

    def __init__(self, server: GitServer, tmp_path: Path) -> None:
        server.create()
        self.server, self.tmp = server, tmp_path
        self.work = server.clone(tmp_path / "dev")
        self.work.write("desired/app.yaml", DESIRED % "1.4.1")
        self.work.write("compose/docker-compose.yml", f"name: {PROJECT}\n" + COMPOSE)
        self.work.commit("initial")
        self.work.push()
        self.source = GitSource(url=server.url(), branch="main", path="desired", interval=60,
                                checkout=str(tmp_path / "state" / "git" / "checkout"),
                                auth=Auth(token=server.token))  # fmt: skip
        self.synced = Synced(self.source)
        self.synced.sync.prepare()
        self.checkout = Path(self.source.checkout)
        self.argv_log = tmp_path / "argv.log"
        bindir = tmp_path / "bin"  # a git that records its command lines, then runs git
        bindir.mkdir()
        (bindir / "git").write_text(
            f'#!/bin/sh\nprintf "%s\\n" "$*" >> {self.argv_log}\nexec /usr/bin/git "$@"\n'
        )
        (bindir / "git").chmod(0o755)
        self.path = f"{bindir}:{os.environ['PATH']}"

    def berth(self, *args: str, token: bool = True) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(PATH=self.path, GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
        if token:
            env["BERTH_GIT_TOKEN"] = self.server.token
        p = subprocess.run(berth_cmd(self.checkout / "desired", self.tmp / "state", *args),
                           capture_output=True, text=True, timeout=60, env=env,
                           check=False)  # fmt: skip
        return Result(p.returncode, p.stdout, p.stderr)

    def remote_tip(self) -> str:
        return git(self.server.bare(), "rev-parse", "main")

    def head(self) -> str:
        return git(self.checkout, "rev-parse", "HEAD")

    def tag_in(self, rev: str) -> str:
        text = git(self.server.bare(), "show", f"{rev}:desired/app.yaml")
        return text.split("api:\n    tag: ")[1].split()[0].strip('"')


@pytest.fixture()
def host(server: GitServer, tmp_path: Path) -> Host:
    return Host(server, tmp_path)


def test_deploy_commit_pushes_to_the_remote_branch(host: Host) -> None:
    start = host.head()
    res = host.berth("deploy", "api", "--tag", "1.4.2", "--commit")
    assert res.code == 0, res.err
    tip = host.remote_tip()
    assert tip != start and host.head() == tip  # on the remote, and the checkout follows
    assert git(host.server.bare(), "rev-parse", f"{tip}^") == start
    assert host.tag_in(tip) == "1.4.2"
    assert git(host.server.bare(), "log", "-1", "--format=%s", tip) == (
        "berth deploy: berthpush/api -> 1.4.2"
    )
    changed = git(host.server.bare(), "show", "--name-only", "--format=", tip)
    assert changed == "desired/app.yaml"  # only the desired file
    assert f"pushed {tip[:12]} to {host.server.url()} main" in res.out
    text = (host.checkout / "desired" / "app.yaml").read_text()
    assert 'tag: "1.4.2"   # pinned' in text  # one line edited, the comment kept
    assert git(host.checkout, "status", "--porcelain") == ""
    # the daemon's next sync finds nothing to do, and nothing in the way
    out = host.synced.sync.sync_once()
    assert (out.result, out.commit, out.changed) == (SyncResult.SUCCESS, tip, False)
    _no_token_anywhere(host, res)


def test_a_push_refused_because_the_remote_moved_leaves_the_checkout(host: Host) -> None:
    start = host.head()
    host.work.write("desired/app.yaml", (DESIRED % "1.4.1").replace("tag: 1.4.1", "tag: 1.4.5"))
    theirs = host.work.commit("someone else: synth-worker 1.4.5")
    host.work.push()
    res = host.berth("deploy", "api", "--tag", "1.4.3", "--commit")
    assert res.code == 1, res.out
    assert "rejected" in res.err and f"the checkout stays at {start[:12]}" in res.err, res.err
    assert "never forced" in res.err and "Traceback" not in res.err
    assert host.remote_tip() == theirs  # not forced
    assert host.head() == start  # no local commit ahead of the remote
    assert git(host.checkout, "status", "--porcelain") == ""
    assert 'tag: "1.4.1"' in (host.checkout / "desired" / "app.yaml").read_text()
    # so the daemon's sync fast-forwards as usual (not "ahead of the remote")
    out = host.synced.sync.sync_once()
    assert (out.result, out.commit, out.changed) == (SyncResult.SUCCESS, theirs, True), out
    # and the command, run again, lands on top of it
    again = host.berth("deploy", "api", "--tag", "1.4.3", "--commit")
    assert again.code == 0, again.err
    assert git(host.server.bare(), "rev-parse", "main^") == theirs
    assert host.tag_in("main") == "1.4.3" and "tag: 1.4.5" in git(
        host.server.bare(), "show", "main:desired/app.yaml"
    )
    _no_token_anywhere(host, res, again)


def test_rollback_commit_pushes(host: Host) -> None:
    assert host.berth("deploy", "api", "--tag", "1.4.2", "--commit").code == 0
    repo = Repo(host.checkout, host.checkout / "desired", host.checkout / "desired" / "app.yaml",
                host.tmp / "state", PROJECT)  # fmt: skip
    repo.seed(("1.4.1", Outcome.SUCCEEDED), ("1.4.2", Outcome.SUCCEEDED))
    res = host.berth("rollback", "api", "--commit")
    assert res.code == 0, res.err
    tip = host.remote_tip()
    assert host.tag_in(tip) == "1.4.1" and host.head() == tip
    assert "pushed" in res.out


def test_an_edit_without_commit_or_token_is_refused(host: Host) -> None:
    start = host.head()
    res = host.berth("deploy", "api", "--tag", "1.4.2")
    assert res.code == 1 and "Berth's checkout of" in res.err and "--commit" in res.err
    assert 'tag: "1.4.1"' in (host.checkout / "desired" / "app.yaml").read_text()
    res = host.berth("deploy", "api", "--tag", "1.4.2", "--commit", token=False)
    assert res.code == 1 and "git push failed" in res.err, res.err
    assert host.head() == start == host.remote_tip()
    assert git(host.checkout, "status", "--porcelain") == ""


def _no_token_anywhere(host: Host, *results: Result) -> None:
    token = host.server.token
    argv = host.argv_log.read_text()
    assert "push" in argv and token not in argv
    for r in results:
        assert token not in r.out and token not in r.err
    for path in (host.checkout / ".git").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    assert token not in (host.server.root / "access.log").read_text()
