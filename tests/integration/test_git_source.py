"""The git syncer against a real git server (nginx + git-http-backend, basic auth): clone,
fast-forward, refusals (force-push, a change outside desired/, unsigned tips), an
unreachable remote or a wrong token, push, and the token kept out of .git/config, status,
logs and every git command line."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from controller.adapters import git_remote as g
from controller.adapters.git_remote import Auth, PushRejected
from controller.core.gitsync import SyncOutcome, SyncResult
from controller.errors import BerthError
from controller.shell.daemon.git_metrics import GitMetrics
from controller.shell.daemon.gitsync import GitSync
from controller.shell.git_source import GitSource
from tests.support.git_server import GitServer, Work, git, git_http_server, ssh_signing_key

DESIRED = "project: p\ncompose: ../compose/c.yml\nservices:\n  api: {tag: '%s'}\n"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[GitServer]:
    with git_http_server(tmp_path / "server") as s:
        yield s


@pytest.fixture()
def work(server: GitServer, tmp_path: Path) -> Work:
    server.create()
    w = server.clone(tmp_path / "dev")
    w.write("desired/app.yaml", DESIRED % "1.0.0")
    w.write("compose/c.yml", "services: {api: {image: app}}\n")
    w.commit("initial")
    w.push()
    return w


class Synced:
    """A GitSync with a real registry, recording reloads and on_sync outcomes."""

    def __init__(self, source: GitSource) -> None:
        self.registry = CollectorRegistry()
        self.reloads: list[str] = []
        self.outcomes: list[SyncOutcome] = []
        self.sync = GitSync(
            source,
            GitMetrics(self.registry, interval=source.interval, webhook=False),
            on_change=self.reloads.append,
            on_sync=self.outcomes.append,
        )

    def metric(self, text: str) -> bool:
        return text in generate_latest(self.registry).decode()


def source(server: GitServer, tmp_path: Path, **kw: object) -> GitSource:
    auth = kw.pop("auth", Auth(token=server.token))
    return GitSource(
        url=server.url(),
        branch="main",
        path="desired",
        interval=60,
        checkout=str(tmp_path / "state" / "git" / "checkout"),
        auth=auth,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_clone_then_fast_forward_and_reload(server: GitServer, work: Work, tmp_path: Path) -> None:
    src = source(server, tmp_path)
    s = Synced(src)
    s.sync.prepare()
    checkout = Path(src.checkout)
    assert (checkout / "desired" / "app.yaml").read_text() == DESIRED % "1.0.0"
    assert stat.S_IMODE(os.stat(checkout.parent).st_mode) == 0o700
    work.write("desired/app.yaml", DESIRED % "2.0.0")
    new = work.commit("api 2.0.0")
    work.push()
    out = s.sync.sync_once()
    assert (out.result, out.commit, out.changed) == (SyncResult.SUCCESS, new, True)
    assert s.reloads == [f"git {new[:12]}"]
    assert (checkout / "desired" / "app.yaml").read_text() == DESIRED % "2.0.0"
    assert s.sync.sync_once().changed is False  # nothing new: no reload
    assert len(s.reloads) == 1 and [o.result for o in s.outcomes] == ["success", "success"]
    status = s.sync.status()
    assert status["commit"] == new and status["last_error"] is None
    assert s.metric('berth_git_sync_total{result="success"} 3.0')  # clone + 2


def test_force_push_is_refused_and_last_good_commit_stays(
    server: GitServer, work: Work, tmp_path: Path
) -> None:
    s = Synced(source(server, tmp_path))
    s.sync.prepare()
    good = work.head()
    git(work.path, "commit", "-q", "--amend", "-m", "rewritten")
    work.push(force=True)
    out = s.sync.sync_once()
    assert out.result is SyncResult.REJECTED and out.commit == good
    assert out.error is not None and "not a fast-forward" in out.error
    assert g.head(s.sync.source.remote, s.sync.source.checkout) == good
    assert s.reloads == [] and s.sync.status()["last_error"] == out.error
    assert s.metric('berth_git_sync_total{result="rejected"} 1.0')
    assert s.metric("berth_git_sync_consecutive_failures 1.0")


def test_change_outside_desired_is_refused_naming_commit_and_path(
    server: GitServer, work: Work, tmp_path: Path
) -> None:
    s = Synced(source(server, tmp_path))
    s.sync.prepare()
    work.write("desired/app.yaml", DESIRED % "2.0.0")
    work.commit("tag")
    work.write("compose/c.yml", "services: {api: {image: app, privileged: true}}\n")
    bad = work.commit("sneaky")
    work.push()
    out = s.sync.sync_once()
    assert out.result is SyncResult.REJECTED
    assert out.error is not None and bad[:12] in out.error and "'compose/c.yml'" in out.error
    checkout = Path(s.sync.source.checkout)
    assert "privileged" not in (checkout / "compose" / "c.yml").read_text()
    assert (checkout / "desired" / "app.yaml").read_text() == DESIRED % "1.0.0"  # all or nothing


def test_trust_repo_accepts_compose_changes(server: GitServer, work: Work, tmp_path: Path) -> None:
    s = Synced(source(server, tmp_path, trust_repo=True))
    s.sync.prepare()
    work.write("compose/c.yml", "services: {api: {image: app2}}\n")
    work.commit("compose")
    work.push()
    assert s.sync.sync_once().result is SyncResult.SUCCESS


def test_allowed_signers(server: GitServer, work: Work, tmp_path: Path) -> None:
    key, signers = ssh_signing_key(tmp_path)
    rogue, _ = ssh_signing_key(tmp_path, "rogue")
    work.write("desired/app.yaml", DESIRED % "1.0.1")
    work.commit("signed start", sign_key=key)
    work.push()
    s = Synced(source(server, tmp_path, auth=Auth(token=server.token, signers=str(signers))))
    s.sync.prepare()  # the clone's tip verifies
    # an unsigned tip, then one signed by a key that is not allowed: refused
    for n, sign in enumerate((None, rogue)):
        work.write("desired/app.yaml", DESIRED % f"2.0.{n}")
        tip = work.commit("unsigned", sign_key=sign)
        work.push()
        out = s.sync.sync_once()
        assert out.result is SyncResult.REJECTED, out
        assert out.error == f"commit {tip[:12]} is not signed by an allowed signer"
    # a signed compose change on top: accepted, the unsigned commits below it were desired-only
    work.write("compose/c.yml", "services: {api: {image: app3}}\n")
    tip = work.commit("operator change", sign_key=key)
    work.push()
    out = s.sync.sync_once()
    assert (out.result, out.commit) == (SyncResult.SUCCESS, tip)


def test_unsigned_clone_with_signers_does_not_start(
    server: GitServer, work: Work, tmp_path: Path
) -> None:
    _, signers = ssh_signing_key(tmp_path)
    src = source(server, tmp_path, auth=Auth(token=server.token, signers=str(signers)))
    with pytest.raises(BerthError, match="not signed by an allowed signer"):
        Synced(src).sync.prepare()
    assert not os.path.exists(src.checkout)


def test_unreachable_remote_and_wrong_token_keep_the_checkout(
    server: GitServer, work: Work, tmp_path: Path
) -> None:
    src = source(server, tmp_path)
    s = Synced(src)
    s.sync.prepare()
    good = work.head()
    wrong = Synced(source(server, tmp_path, auth=Auth(token="wrong-token-5b1d")))
    out = wrong.sync.sync_once()
    assert out.result is SyncResult.ERROR and out.commit == good
    assert out.error is not None and "wrong-token-5b1d" not in out.error
    gone = source(server, tmp_path)
    gone = GitSource(**{**gone.__dict__, "url": "http://127.0.0.1:9/git/deploy.git"})
    git(src.checkout, "remote", "set-url", "origin", gone.url)
    s2 = Synced(gone)
    out = s2.sync.sync_once()
    assert out.result is SyncResult.ERROR and out.commit == good
    assert s2.sync.status()["last_error"] == out.error and s2.sync.status()["synced_at"] is None
    assert s2.metric('berth_git_sync_total{result="error"} 1.0')
    assert (Path(src.checkout) / "desired" / "app.yaml").read_text() == DESIRED % "1.0.0"


def test_existing_checkout_of_another_remote_is_refused(
    server: GitServer, work: Work, tmp_path: Path
) -> None:
    src = source(server, tmp_path)
    Synced(src).sync.prepare()
    other = GitSource(**{**src.__dict__, "url": server.url("other.git")})
    with pytest.raises(BerthError, match="follows"):
        Synced(other).sync.prepare()


def test_push_and_a_rejected_push(server: GitServer, work: Work, tmp_path: Path) -> None:
    src = source(server, tmp_path)
    s = Synced(src)
    s.sync.prepare()
    co = Work(Path(src.checkout))
    git(co.path, "config", "user.email", "berth@example.com")
    git(co.path, "config", "user.name", "berth")
    co.write("desired/app.yaml", DESIRED % "3.0.0")
    mine = co.commit("berth deploy api 3.0.0")
    g.push(src.remote, src.checkout)
    assert git(server.bare(), "rev-parse", "main") == mine
    # the remote moves meanwhile: the next push is refused, never forced
    git(work.path, "pull", "-q", "--ff-only")
    work.write("desired/other.yaml", "x: 1\n")
    theirs = work.commit("someone else")
    work.push()
    co.write("desired/app.yaml", DESIRED % "3.0.1")
    co.commit("berth deploy api 3.0.1")
    with pytest.raises(PushRejected, match="rejected"):
        g.push(src.remote, src.checkout)
    assert git(server.bare(), "rev-parse", "main") == theirs


def test_a_proposal_branch_is_replaced_only_where_berth_left_it(
    server: GitServer, work: Work, tmp_path: Path
) -> None:
    """push(lease=...): a new proposal branch is created ("" = must not exist), replaced
    where Berth left it, and never overwritten once somebody else pushed to it."""
    from dataclasses import replace

    src = source(server, tmp_path)
    s = Synced(src)
    s.sync.prepare()
    co = Work(Path(src.checkout))
    git(co.path, "config", "user.email", "berth@example.com")
    git(co.path, "config", "user.name", "berth")
    proposals = replace(src.remote, branch="berth/updates")
    co.write("desired/app.yaml", DESIRED % "3.0.0")
    first = co.commit("berth image update 3.0.0")
    g.push(proposals, src.checkout, first, lease="")
    git(co.path, "reset", "-q", "--hard", "HEAD~1")
    co.write("desired/app.yaml", DESIRED % "3.0.1")
    second = co.commit("berth image update 3.0.1")  # rebuilt on the tip: not a fast-forward
    g.push(proposals, src.checkout, second, lease=first)
    assert git(server.bare(), "rev-parse", "berth/updates") == second
    # somebody pushes to the proposal branch: Berth's next proposal must not erase it
    git(work.path, "fetch", "-q", "origin", "berth/updates")
    git(work.path, "checkout", "-q", "-b", "mine", "FETCH_HEAD")
    work.write("desired/notes.yaml", "x: 1\n")
    theirs = work.commit("a reviewer's fix")
    git(work.path, "push", "-q", "origin", "HEAD:berth/updates")
    git(co.path, "reset", "-q", "--hard", "HEAD~1")
    co.write("desired/app.yaml", DESIRED % "3.0.2")
    third = co.commit("berth image update 3.0.2")
    with pytest.raises(PushRejected, match="never overwritten"):
        g.push(proposals, src.checkout, third, lease=second)
    assert git(server.bare(), "rev-parse", "berth/updates") == theirs
    # and a branch that existed before Berth ever proposed on it is not taken over
    with pytest.raises(PushRejected, match="never overwritten"):
        g.push(replace(src.remote, branch="main"), src.checkout, third, lease="")


def test_token_never_in_config_status_logs_or_command_lines(
    server: GitServer, work: Work, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a git on PATH that records its command lines and environment keys, then runs git
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "argv.log"
    (bindir / "git").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> {record}\nenv | grep -c "^GIT_CONFIG_VALUE" '
        f'>> {record}.env\nexec /usr/bin/git "$@"\n'
    )
    (bindir / "git").chmod(0o755)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bindir}:{old_path}"
    try:
        caplog.set_level(logging.DEBUG)
        src = source(server, tmp_path)
        s = Synced(src)
        s.sync.prepare()
        work.write("desired/app.yaml", DESIRED % "2.0.0")
        work.commit("tag")
        work.push()
        assert s.sync.sync_once().changed
    finally:
        os.environ["PATH"] = old_path
    argv = record.read_text()
    assert "fetch" in argv and server.token not in argv
    for path in Path(src.checkout, ".git").rglob("*"):
        if path.is_file():
            assert server.token.encode() not in path.read_bytes(), path
    assert server.token not in json.dumps(s.sync.status())
    assert server.token not in caplog.text
    assert server.token not in (server.root / "access.log").read_text()
