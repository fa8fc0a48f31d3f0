"""`berth deploy/rollback --commit` is all or nothing, against real git and real files.

A daemon rolls out whatever desired/*.yaml says, so a commit that fails must leave desired/
exactly as it was (bytes), the index as it was (berth's files unstaged, the user's staged
changes still staged) and HEAD where it was, and say so in one line. Each cause below is a
real git configuration that makes `git commit` (or the check before it) refuse.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.adapters import git
from tests.integration.test_deploy_cli import COMPOSE, DESIRED, Repo, git_env, make_repo
from tests.support.berth import berth_cmd

UNCHANGED = "desired/ left unchanged"


@pytest.fixture()
def repo(tmp_path: Path, project: str) -> Repo:
    """The deploy repository plus what a user's checkout has: a staged unrelated file and an
    unstaged edit of another one (both must survive a failed deploy untouched)."""
    r = make_repo(tmp_path, project)
    (r.root / "unrelated.txt").write_text("staged but not ours\n")
    r.git("add", "unrelated.txt")
    compose = r.root / "compose" / "docker-compose.yml"
    compose.write_text(compose.read_text() + "# an operator's edit in progress\n")
    return r


def _hook(r: Repo, name: str, body: str) -> None:
    hook = r.root / ".git" / "hooks" / name
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(0o755)


@dataclass(frozen=True)
class State:
    """Everything a failed deploy must leave as it was."""

    desired: dict[str, bytes]
    status: str
    index: str
    head: str

    @classmethod
    def of(cls, r: Repo) -> State:
        return cls(
            desired={
                str(p.relative_to(r.desired_dir)): p.read_bytes()
                for p in sorted(r.desired_dir.rglob("*.yaml"))
            },
            status=r.git("status", "--porcelain", "--untracked-files=all"),
            index=r.git("ls-files", "-s"),
            head=r.git("rev-parse", "HEAD").strip(),
        )


def _no_leftovers(r: Repo) -> None:
    assert not list(r.desired_dir.rglob(".*berth-tmp*")), "no temp file left behind"


# -- the causes: each sets up one way for a commit to fail; returns the berth environment --


def pre_commit_refuses(r: Repo, tmp: Path) -> dict[str, str]:
    _hook(r, "pre-commit", "echo 'policy: deploys are frozen until Monday' >&2\nexit 1\n")
    return git_env()


def commit_msg_refuses(r: Repo, tmp: Path) -> dict[str, str]:
    _hook(r, "commit-msg", "echo 'commit-msg: subject must name a ticket' >&2\nexit 1\n")
    return git_env()


def identity_refused(r: Repo, tmp: Path) -> dict[str, str]:
    """No user.* anywhere (empty HOME, no system config) and the CI environment exports an
    empty author/committer name, which git refuses and berth's fallback cannot override."""
    home = tmp / "empty-home"
    home.mkdir()
    env = {k: v for k, v in git_env().items() if k not in ("GIT_CONFIG_GLOBAL", "XDG_CONFIG_HOME")}
    return {**env, "HOME": str(home), "GIT_AUTHOR_NAME": "", "GIT_COMMITTER_NAME": ""}


def index_locked(r: Repo, tmp: Path) -> dict[str, str]:
    (r.root / ".git" / "index.lock").write_text("")
    return git_env()


def ref_locked(r: Repo, tmp: Path) -> dict[str, str]:
    """Fails late: after both hooks ran and the commit object was written, at the ref."""
    (r.root / ".git" / "refs" / "heads" / "main.lock").write_text("")
    return git_env()


def gpg_sign_fails(r: Repo, tmp: Path) -> dict[str, str]:
    r.git("config", "commit.gpgsign", "true")
    r.git("config", "gpg.program", "false")
    return git_env()


Cause = Callable[[Repo, Path], dict[str, str]]


CAUSES = [
    (pre_commit_refuses, "git commit failed (policy: deploys are frozen until Monday)"),
    (commit_msg_refuses, "git commit failed (commit-msg: subject must name a ticket)"),
    (identity_refused, "git refuses the commit identity (fatal: empty ident name"),
    (index_locked, "the git index is locked ("),
    (ref_locked, "git commit failed (fatal: cannot lock ref 'HEAD'"),
    (gpg_sign_fails, "git commit failed (error: gpg failed to sign the data)"),
]


@pytest.mark.parametrize(("cause", "says"), [pytest.param(c, s, id=c.__name__) for c, s in CAUSES])
@pytest.mark.parametrize("command", ["deploy", "rollback"])
def test_failed_commit_leaves_everything_as_it_was(
    repo: Repo, tmp_path: Path, cause: Cause, says: str, command: str
) -> None:
    repo.seed(("1.4.0", "succeeded"), ("1.4.1", "rolled_back"))
    args = ["deploy", "api", "--tag", "1.4.2"] if command == "deploy" else ["rollback", "api"]
    env = cause(repo, tmp_path)
    before = State.of(repo)
    res = repo.berth(*args, "--commit", env=env)
    assert res.code == 1, (res.out, res.err)
    assert len(res.err.splitlines()) == 1, res.err
    assert res.err.startswith("berth: ") and says in res.err, res.err
    assert res.err.rstrip().endswith(UNCHANGED), res.err
    assert State.of(repo) == before
    assert "A  unrelated.txt" in before.status.splitlines()  # still staged, not committed
    _no_leftovers(repo)


def test_every_file_of_a_multi_file_edit_is_put_back(repo: Repo, tmp_path: Path) -> None:
    second = repo.desired_dir / "second.yaml"
    compose = repo.root / "compose" / "docker-compose.yml"
    other = repo.root / "compose" / "b.yml"  # a second stack: its own project, its own file
    other.write_text(f"name: {repo.project}-b\n" + COMPOSE)
    text = DESIRED.format(project=f"{repo.project}-b").replace(compose.name, other.name)
    second.write_text(text)
    repo.git("add", "desired/second.yaml", "compose/b.yml")
    repo.git("commit", "-q", "-m", "second stack", "--", "desired/second.yaml", "compose/b.yml")
    env = commit_msg_refuses(repo, tmp_path)
    before = State.of(repo)
    res = repo.berth("deploy", "all", "--tag", "1.5.0", "--commit", env=env)
    assert res.code == 1 and UNCHANGED in res.err, res.err
    assert State.of(repo) == before
    _no_leftovers(repo)


def test_a_hook_that_rewrites_the_file_and_refuses(repo: Repo, tmp_path: Path) -> None:
    """A formatter hook (pre-commit's end-of-file-fixer, say) rewrites the file and fails:
    its change is discarded too; an uncommitted tag must not stay in desired/."""
    _hook(repo, "pre-commit", "echo '# reformatted' >> desired/app.yaml\nexit 1\n")
    before = State.of(repo)
    res = repo.berth("deploy", "api", "--tag", "1.4.2", "--commit")
    assert res.code == 1 and len(res.err.splitlines()) == 1, res.err
    assert "discarded a change made to" in res.err and "app.yaml during the commit" in res.err
    assert State.of(repo) == before
    _no_leftovers(repo)


def test_unborn_repository_refused_before_writing(tmp_path: Path, project: str) -> None:
    r = make_repo(tmp_path, project)
    shutil.rmtree(r.root / ".git")
    r.git("init", "-q", "-b", "main")
    before = r.desired_file.read_bytes()
    res = r.berth("deploy", "api", "--tag", "1.4.2", "--commit")
    assert res.code == 1 and "has no commit yet" in res.err and UNCHANGED in res.err, res.err
    assert r.desired_file.read_bytes() == before
    assert r.git("status", "--porcelain").splitlines() == ["?? compose/", "?? desired/"]


def test_success_commits_exactly_the_desired_file_with_hooks_run(repo: Repo) -> None:
    """Hooks run and see the edit both on disk and in the index they commit."""
    seen = repo.root.parent / "hook-saw"
    _hook(
        repo,
        "pre-commit",
        f"grep -q '\"1.4.2\"' desired/app.yaml && git show :desired/app.yaml | grep -q 1.4.2 "
        f"&& echo ok > {seen}\n",
    )
    before = State.of(repo)
    res = repo.berth("deploy", "api", "--tag", "1.4.2", "--commit")
    assert res.code == 0, res.err
    assert seen.read_text() == "ok\n"
    assert repo.git("rev-parse", "HEAD~1").strip() == before.head
    assert repo.git("show", "--name-only", "--format=", "HEAD").split() == ["desired/app.yaml"]
    assert repo.git("status", "--porcelain", "--untracked-files=all") == before.status
    assert repo.git("show", "HEAD:desired/app.yaml") == repo.desired_file.read_text()
    _no_leftovers(repo)


def test_no_identity_anywhere_commits_as_berth(repo: Repo, tmp_path: Path) -> None:
    """No user.* in the repository, an empty HOME, no system config: not a failure, by
    contract (docs/cli.md) berth commits as its own identity, so a bare CI checkout can."""
    home = tmp_path / "empty-home"
    home.mkdir()
    env = {k: v for k, v in git_env().items() if k not in ("GIT_CONFIG_GLOBAL", "XDG_CONFIG_HOME")}
    res = repo.berth("deploy", "api", "--tag", "1.4.2", "--commit", env={**env, "HOME": str(home)})
    assert res.code == 0, res.err
    assert repo.git("log", "-1", "--format=%an <%ae>").strip() == "berth <berth@localhost>"


# -- a desired file that is a symlink (inside desired/, as the loader requires) -------------


@pytest.fixture()
def linked(repo: Repo) -> Repo:
    """desired/app.yaml -> stacks/app.yaml, both tracked: the target is what is edited."""
    target = repo.desired_dir / "stacks" / "app.yaml"
    target.parent.mkdir()
    repo.desired_file.rename(target)
    repo.desired_file.symlink_to(os.path.join("stacks", "app.yaml"))
    repo.git("add", "desired")
    repo.git("commit", "-q", "-m", "link", "--", "desired")
    return repo


def test_symlinked_file_restored_through_the_link(linked: Repo, tmp_path: Path) -> None:
    env = pre_commit_refuses(linked, tmp_path)
    before = State.of(linked)
    res = linked.berth("deploy", "api", "--tag", "1.4.2", "--commit", env=env)
    assert res.code == 1 and UNCHANGED in res.err, res.err
    assert linked.desired_file.is_symlink()
    assert State.of(linked) == before
    _no_leftovers(linked)


def test_symlinked_file_commit_changes_the_target_only(linked: Repo) -> None:
    res = linked.berth("deploy", "api", "--tag", "1.4.2", "--commit")
    assert res.code == 0, res.err
    assert linked.desired_file.is_symlink()
    changed = linked.git("show", "--name-only", "--format=", "HEAD").split()
    assert changed == ["desired/stacks/app.yaml"]


# -- interrupted between the write and the end of the commit ---------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupt_during_the_commit_restores(repo: Repo, signum: int) -> None:
    """The signal reaches berth alone (`kill PID`, not a terminal's Ctrl-C to the group)
    while a slow pre-commit hook runs: berth stops git, which removes its lock files."""
    started = repo.root.parent / "hook-started"
    _hook(repo, "pre-commit", f"echo $$ > {started}\nexec sleep 30\n")
    before = State.of(repo)
    proc = subprocess.Popen(
        berth_cmd(repo.desired_dir, repo.state, "deploy", "api", "--tag", "1.4.2", "--commit"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=git_env(),
        # a pytest started in the background of a non-interactive shell has SIGINT ignored,
        # and an ignored SIGINT is inherited (Python then installs no handler): undo that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists() or not started.read_text().strip():
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert b'"1.4.2"' in repo.desired_file.read_bytes()  # the window the undo closes
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        hook_pid = started.read_text().strip() if started.exists() else ""
        if hook_pid:  # git may have taken its hook down with it already
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(hook_pid), signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    assert err.strip() == f"berth: interrupted; {UNCHANGED}", err
    assert State.of(repo) == before
    assert not (repo.root / ".git" / "index.lock").exists()
    _no_leftovers(repo)


# -- the git adapter's undo pieces, on a real repository ---------------------------------------


def test_restore_index_puts_back_what_was_staged(repo: Repo) -> None:
    path = str(repo.desired_file)
    recorded = git.before_commit(str(repo.desired_dir), [path])
    original = repo.desired_file.read_bytes()
    repo.desired_file.write_bytes(original.replace(b"1.4.1", b"9.9.9"))
    repo.git("add", "desired/app.yaml")  # as if something had staged berth's edit
    repo.desired_file.write_bytes(original)
    assert git.restore_index(recorded, [path]) is True
    assert repo.git("ls-files", "-s", "desired/app.yaml") == recorded.entries.replace("\0", "\n")
    assert "desired/app.yaml" not in repo.git("status", "--porcelain")
    assert git.restore_index(recorded, [path]) is False  # nothing left to do


def test_landed_recognises_only_a_child_holding_the_work_tree(repo: Repo) -> None:
    path = str(repo.desired_file)
    recorded = git.before_commit(str(repo.desired_dir), [path])
    assert git.landed(str(repo.desired_dir), recorded, [path]) is None  # HEAD did not move
    repo.desired_file.write_text(repo.desired_file.read_text().replace("1.4.1", "1.4.2"))
    repo.git("commit", "-q", "-m", "other", "--", "compose")  # someone else's commit
    assert git.landed(str(repo.desired_dir), recorded, [path]) is None
    assert recorded.head is not None
    repo.git("reset", "-q", "--soft", recorded.head)
    repo.git("commit", "-q", "-m", "ours", "--only", "--", "desired/app.yaml")
    head = repo.git("rev-parse", "HEAD").strip()
    assert git.landed(str(repo.desired_dir), recorded, [path]) == head


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (CI runs as root); unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_during_the_commit_leaves_desired_unchanged(
    small_disk: Path, project: str
) -> None:
    """The commit fails for lack of space; the undo must not need space (it renames the
    original back instead of writing a copy), and the error is one line."""
    r = make_repo(small_disk, project)
    before = State.of(r)
    filler = small_disk / "filler"
    # fill the disk to the last block (unbuffered: nothing left to flush at close)
    with open(filler, "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)
    os.truncate(filler, filler.stat().st_size - 4096)  # one block free: git status passes
    res = r.berth("deploy", "api", "--tag", "9.9.9", "--commit")
    assert res.code == 1, res.err
    assert "Traceback" not in res.err and len(res.err.strip().splitlines()) == 1, res.err
    assert UNCHANGED in res.err, res.err
    filler.unlink()
    assert State.of(r).desired == before.desired
    assert State.of(r).head == before.head
    assert not list(r.desired_dir.glob(".*berth-*")), "no temp or backup file left"


def test_rollback_all_is_refused_in_one_line(repo: Repo) -> None:
    res = repo.berth("rollback", "all")
    assert res.code == 1 and "Traceback" not in res.err
    assert "one service" in res.err, res.err
