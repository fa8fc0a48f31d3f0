"""`berth deploy` / `berth rollback` as users run them, in a throw-away git repository.

No Docker needed: nothing here waits through an in-process reconcile. `--wait` is tested
against a stand-in daemon that serves `/status` rows, which is the contract it polls.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.sqlite_store import SqliteStateStore
from controller.ports import Outcome
from controller.shell import desired_edit as deploy
from controller.shell.wiring import Context
from tests.support.berth import Result, berth_cmd

COMPOSE = """\
services:
  api:
    image: berth-test/app
    x-berth:
      allowed_tags: '^\\d+\\.\\d+\\.\\d+$'
  synth-worker:
    image: berth-test/app
  nginx:
    image: berth-test/app:1.0.0
"""

DESIRED = """\
# desired/app.yaml: the example stack
project: {project}
compose: ../compose/docker-compose.yml   # operators own this one

services:
  # public API
  api:
    tag: "1.4.1"    # pinned
    replicas: 2
  synth-worker:
    tag: 1.4.1
"""

GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@example.com"]


@dataclass(frozen=True)
class Repo:
    root: Path
    desired_dir: Path
    desired_file: Path
    state: Path
    project: str

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(self.root), *GIT_ID, *args],
            capture_output=True,
            text=True,
            check=True,
            env=git_env(),
        )
        return out.stdout

    def berth(
        self, *args: str, timeout: float = 60, env: Mapping[str, str] | None = None
    ) -> Result:
        p = subprocess.run(
            berth_cmd(self.desired_dir, self.state, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else git_env(),
            check=False,
        )
        return Result(p.returncode, p.stdout, p.stderr)

    def seed(self, *rollouts: tuple[str, Outcome]) -> None:
        """(to_tag, outcome) rollouts of api, oldest first, into the state database."""
        self.state.mkdir(exist_ok=True)
        store = SqliteStateStore(str(self.state / "state.db"))
        try:
            prev: str | None = None
            for i, (tag, outcome) in enumerate(rollouts):
                rid = store.begin_rollout(
                    project=self.project,
                    service="api",
                    from_tag=prev,
                    to_tag=tag,
                    from_revision=None,
                    to_revision=f"rev{i}",
                    commit=None,
                    at=1000.0 + i,
                )
                store.finish_rollout(rid, outcome=outcome, reason="", at=1000.5 + i)
                prev = tag
        finally:
            store.close()


def git_env() -> dict[str, str]:
    """No global/system git config: berth must fall back to its own identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**env, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "NO_COLOR": "1"}


def make_repo(tmp_path: Path, project: str) -> Repo:
    """desired/app.yaml and the compose file it names, committed in a fresh repository."""
    root = tmp_path / "repo"
    (root / "compose").mkdir(parents=True)
    (root / "desired").mkdir()
    (root / "compose" / "docker-compose.yml").write_text(f"name: {project}\n" + COMPOSE)
    desired_file = root / "desired" / "app.yaml"
    desired_file.write_text(DESIRED.format(project=project))
    r = Repo(root, root / "desired", desired_file, tmp_path / "state", project)
    r.git("init", "-q", "-b", "main")
    r.git("add", ".")
    r.git("commit", "-q", "-m", "initial")
    return r


@pytest.fixture()
def repo(tmp_path: Path, project: str) -> Repo:
    return make_repo(tmp_path, project)


def _diff_lines(r: Repo, *rev: str) -> list[str]:
    out = r.git("diff", "--unified=0", *rev)
    return [
        line
        for line in out.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_deploy_without_commit_changes_exactly_one_line(repo: Repo) -> None:
    res = repo.berth("deploy", "api", "--tag", "1.4.2")
    assert res.code == 0, res.err
    assert "api 1.4.1 -> 1.4.2" in res.out
    assert _diff_lines(repo) == ['-    tag: "1.4.1"    # pinned', '+    tag: "1.4.2"    # pinned']
    assert repo.git("log", "--format=%s").splitlines() == ["initial"]
    assert not list(repo.desired_dir.glob(".*berth-tmp*")), "no temp file left behind"


def test_deploy_with_commit(repo: Repo) -> None:
    (repo.root / "unrelated.txt").write_text("staged but not ours\n")
    repo.git("add", "unrelated.txt")
    res = repo.berth("deploy", "api", "--tag", "1.4.2", "--commit")
    assert res.code == 0, res.err
    sha = repo.git("rev-parse", "HEAD").strip()
    assert f"committed {sha[:12]}" in res.out
    subject = repo.git("log", "-1", "--format=%s").strip()
    assert subject == f"berth deploy: {repo.project}/api -> 1.4.2"
    assert f"{repo.project}/api: 1.4.1 -> 1.4.2" in repo.git("log", "-1", "--format=%b")
    assert repo.git("log", "-1", "--format=%an <%ae>").strip() == "berth <berth@localhost>"
    assert repo.git("show", "--name-only", "--format=", "HEAD").split() == ["desired/app.yaml"]
    assert len(_diff_lines(repo, "HEAD~1", "HEAD")) == 2  # one line out, one line in
    assert repo.git("status", "--porcelain").splitlines() == ["A  unrelated.txt"]


def test_deploy_message_and_json(repo: Repo) -> None:
    res = repo.berth("deploy", "api", "--tag", "1.4.2", "--commit", "-m", "ship it", "--json")
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert report["changes"] == [
        {
            "file": str(repo.desired_file),
            "project": repo.project,
            "service": "api",
            "old": "1.4.1",
            "new": "1.4.2",
        }
    ]
    assert report["commit"] == repo.git("rev-parse", "HEAD").strip()
    assert repo.git("log", "-1", "--format=%s").strip() == "ship it"


def test_deploy_all_updates_every_named_service(repo: Repo) -> None:
    res = repo.berth("deploy", "all", "--tag", "1.5.0", "--commit")
    assert res.code == 0, res.err
    assert _diff_lines(repo, "HEAD~1", "HEAD") == [
        '-    tag: "1.4.1"    # pinned',
        '+    tag: "1.5.0"    # pinned',
        "-    tag: 1.4.1",
        "+    tag: 1.5.0",
    ]
    # nginx is not named in desired/: it keeps running the compose file's image
    assert "nginx" not in res.out


def test_deploy_same_tag_changes_nothing(repo: Repo) -> None:
    before = repo.desired_file.read_bytes()
    res = repo.berth("deploy", "api", "--tag", "1.4.1", "--commit")
    assert res.code == 0, res.err
    assert "nothing to change" in res.out
    assert repo.desired_file.read_bytes() == before
    assert repo.git("log", "--format=%s").splitlines() == ["initial"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["deploy", "nope", "--tag", "1.4.2"], "unknown service 'nope'"),
        (["deploy", "nginx", "--tag", "1.4.2"], "unknown service 'nginx'"),
        (["deploy", "api", "--tag", "bad tag"], "invalid tag"),
        (["deploy", "synth-worker", "--tag", "1.4.2:x"], "invalid tag"),
        (["deploy", "api", "--tag", "latest"], "does not match allowed_tags"),
        (["deploy", "all", "--tag", "latest"], "does not match allowed_tags"),
        (["deploy", "all", "api", "--tag", "1.4.2"], "cannot be combined"),
        (["deploy", "all", "--project", "other", "--tag", "1.4.2"], "no project 'other'"),
        (["rollback", "api"], "no successful rollout of"),
    ],
)
def test_bad_input_exits_1_and_changes_nothing(repo: Repo, args: list[str], fragment: str) -> None:
    before = repo.desired_file.read_bytes()
    res = repo.berth(*args)
    assert res.code == 1, (res.out, res.err)
    assert fragment in res.err
    assert repo.desired_file.read_bytes() == before
    assert repo.git("status", "--porcelain", "desired").strip() == ""


def test_uncommitted_changes_with_commit_refused(repo: Repo) -> None:
    edited = repo.desired_file.read_text().replace("replicas: 2", "replicas: 3")
    repo.desired_file.write_text(edited)
    res = repo.berth("deploy", "api", "--tag", "1.4.2", "--commit")
    assert res.code == 1
    assert "uncommitted changes" in res.err
    assert repo.desired_file.read_text() == edited
    # without --commit, the same edit is fine: the operator owns the working tree
    assert repo.berth("deploy", "api", "--tag", "1.4.2").code == 0


def test_commit_outside_a_repository_refused(repo: Repo) -> None:
    import shutil

    shutil.rmtree(repo.root / ".git")
    before = repo.desired_file.read_bytes()
    res = repo.berth("deploy", "api", "--tag", "1.4.2", "--commit")
    assert res.code == 1 and "not in a git repository" in res.err
    assert "desired/ left unchanged" in res.err
    assert repo.desired_file.read_bytes() == before
    assert not list(repo.desired_dir.glob(".*berth-tmp*"))


def test_invalid_result_is_refused(repo: Repo) -> None:
    # the file is valid, but another desired file also sets api: any write is refused
    (repo.desired_dir / "other.yaml").write_text(
        f"project: {repo.project}\ncompose: ../compose/docker-compose.yml\n"
        "services:\n  api:\n    tag: '1.0.0'\n"
    )
    before = repo.desired_file.read_bytes()
    res = repo.berth("deploy", "synth-worker", "--tag", "1.4.2")
    assert res.code == 1 and "also set in" in res.err
    assert repo.desired_file.read_bytes() == before


def test_stale_edit_is_refused_and_nothing_written(repo: Repo) -> None:
    ctx = Context(str(repo.desired_dir), str(repo.state), None)
    snap = deploy.read_snapshot(ctx)
    wants = [deploy.Want(repo.project, "api", "1.4.2")]
    new = deploy.edited_texts(snap, deploy.changes_for(snap, wants))
    meanwhile = repo.desired_file.read_text().replace("replicas: 2", "replicas: 4")
    repo.desired_file.write_text(meanwhile)  # someone else edits after berth read the file
    with pytest.raises(deploy.DeployError, match="changed while berth was editing"):
        deploy.write_files(ctx.desired, snap, new)
    assert repo.desired_file.read_text() == meanwhile
    assert not list(repo.desired_dir.glob(".*berth-tmp*"))
    fresh = deploy.read_snapshot(ctx)  # run again: computed from the current text, it works
    deploy.write_files(
        ctx.desired, fresh, deploy.edited_texts(fresh, deploy.changes_for(fresh, wants))
    )
    assert repo.desired_file.read_text() == meanwhile.replace('"1.4.1"', '"1.4.2"')


def test_rollback_writes_last_good_tag(repo: Repo) -> None:
    repo.seed(("1.3.0", "succeeded"), ("1.4.0", "succeeded"), ("1.4.1", "rolled_back"))
    res = repo.berth("rollback", "api", "--commit")
    assert res.code == 0, res.err
    assert "api 1.4.1 -> 1.4.0" in res.out
    assert _diff_lines(repo, "HEAD~1", "HEAD") == [
        '-    tag: "1.4.1"    # pinned',
        '+    tag: "1.4.0"    # pinned',
    ]
    assert repo.git("log", "-1", "--format=%s").strip() == (
        f"berth rollback: {repo.project}/api -> 1.4.0"
    )
    assert "last good rollout #2" in repo.git("log", "-1", "--format=%b")


def test_rollback_skips_the_current_tag(repo: Repo) -> None:
    repo.seed(("1.3.0", "succeeded"), ("1.4.0", "failed"), ("1.4.1", "succeeded"))
    res = repo.berth("rollback", f"{repo.project}/api")
    assert res.code == 0, res.err
    assert "api 1.4.1 -> 1.3.0" in res.out


def test_rollback_with_only_the_current_tag_good(repo: Repo) -> None:
    repo.seed(("1.4.1", "succeeded"))
    before = repo.desired_file.read_bytes()
    res = repo.berth("rollback", "api")
    assert res.code == 1
    assert "other than the current 1.4.1" in res.err
    assert repo.desired_file.read_bytes() == before


# -- --wait against a stand-in daemon --------------------------------------------------------


@pytest.fixture()
def daemon() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rows: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(rows if self.path == "/status" else {}).encode()
            self.send_response(200 if self.path == "/status" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", rows
    server.shutdown()
    server.server_close()


def _row(project: str, **kw: Any) -> dict[str, Any]:
    return {
        "project": project,
        "service": "api",
        "desired_tag": "1.4.2",
        "running_tags": ["1.4.2"],
        "ready": 2,
        "desired_replicas": 2,
        "last_outcome": "succeeded",
        "last_reason": "",
        "quarantined": False,
        **kw,
    }


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({}, 0),
        ({"quarantined": True, "running_tags": ["1.4.1"], "last_outcome": "rolled_back"}, 3),
        ({"running_tags": ["1.4.1", "1.4.2"], "ready": 1, "last_outcome": "in_progress"}, 1),
    ],
)
def test_wait_polls_the_daemon(
    repo: Repo, daemon: tuple[str, list[dict[str, Any]]], row: dict[str, Any], code: int
) -> None:
    url, rows = daemon
    rows.append(_row(repo.project, **row))
    res = repo.berth(
        "deploy", "api", "--tag", "1.4.2", "--wait", "--timeout", "1.5", "--controller", url
    )
    assert res.code == code, (res.out, res.err)
    assert '"1.4.2"' in repo.desired_file.read_text()  # the edit stands whatever the outcome


def test_wait_timeout_says_when_the_daemon_never_saw_the_edit(
    repo: Repo, daemon: tuple[str, list[dict[str, Any]]]
) -> None:
    """A daemon watching another desired/ keeps desiring the old tag: the timeout says so,
    and is not confused with a slow rollout."""
    url, rows = daemon
    rows.append(_row(repo.project, desired_tag="1.4.1", running_tags=["1.4.1"]))
    res = repo.berth(
        "deploy", "api", "--tag", "1.4.2", "--wait", "--timeout", "1.0", "--controller", url
    )
    assert res.code == 1, (res.out, res.err)
    assert "timed out" in res.err
    assert "still desires 1.4.1" in res.err and "does it watch the desired/" in res.err
    rows[0] = _row(
        repo.project,
        desired_tag="1.4.3",
        running_tags=["1.4.2", "1.4.3"],
        ready=1,
        last_outcome="in_progress",
    )  # it sees this one: just slow
    slow = repo.berth(
        "deploy", "api", "--tag", "1.4.3", "--wait", "--timeout", "1.0", "--controller", url
    )
    assert slow.code == 1 and "timed out" in slow.err, (slow.out, slow.err)
    assert "does it watch" not in slow.err, slow.err
