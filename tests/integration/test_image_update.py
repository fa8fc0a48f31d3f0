"""Image-update automation (issue 13, item 3) against a real registry and real git: tags
scanned through the registry's tag list, chosen by the policy, written into desired/ as a
commit (local repository, proposal branch, and a remote git source end to end)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.core.imageupdate import UpdatePolicy
from controller.shell.daemon.automation import ImageAutomation
from controller.shell.daemon.metrics import Metrics
from controller.shell.wiring import Context
from tests.conftest import TmpStack
from tests.support.daemon import berth_run, wait_for
from tests.support.git_server import GitServer, git, git_http_server
from tests.support.images import ensure_app_image, healthcheck
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def push_tags(registry: RegistryServer, client: Any, repo: str, tags: list[str]) -> None:
    for tag in tags:
        local = ensure_app_image(f"{tag}-reg" if "rc" not in tag else "2.0.0-reg", client=client)
        registry.push(client, local, repo, tag)


def compose(registry: RegistryServer, repo: str, update: dict[str, Any]) -> dict[str, Any]:
    return {
        "services": {
            "api": {
                "image": f"{registry.host}/{repo}",
                "init": True,
                "stop_grace_period": "2s",
                "healthcheck": {"test": healthcheck(), "interval": "500ms", "retries": 3},
                "x-berth": {"update": update, "progress_deadline": "30s"},
            }
        }
    }


def automation(ctx: Context) -> ImageAutomation:
    cfg = ctx.config()
    metrics = Metrics(CollectorRegistry()).images
    return ImageAutomation(ctx, lambda: cfg, metrics, threading.Event())


def repo_of(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "initial")


def test_semver_policy_commits_the_highest_tag_in_range_and_skips_quarantined(
    registry: RegistryServer, docker_client: Any, tmp_stack: TmpStack, project: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
    repo = f"auto/{project}"
    push_tags(registry, docker_client, repo, ["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0"])
    s = tmp_stack(compose(registry, repo, {"semver": ">=1.0.0 <2", "interval": "10s"}),
                  {"api": {"tag": "1.0.0"}})  # fmt: skip
    repo_of(s.root)
    before = s.desired_file.read_text()
    ctx = Context(str(s.desired_dir), str(s.state_dir), None)
    t = next(t for t in ctx.config().targets if t.service == "api")
    policy = t.spec.berth.update
    assert policy is not None
    auto = automation(ctx)
    scan = auto.scan(t, policy, "1.0.0")
    assert scan.chosen == "1.1.0" and scan.error is None  # not the rc, not 2.0.0
    assert s.desired_file.read_text() == before.replace("1.0.0", "1.1.0")
    log = git(s.root, "log", "-1", "--format=%H %s")
    assert log.startswith(scan.commit or "-") and "image update" in log
    [row] = auto.status()  # what /status/updates shows
    assert (row["service"], row["current"], row["chosen"], row["commit"]) == (
        "api",
        "1.0.0",
        "1.1.0",
        scan.commit,
    )
    assert git(s.root, "status", "--porcelain", "--", "desired") == ""  # all committed
    # 1.3.0 is pushed, but it was quarantined: skipped, and never a step back
    push_tags(registry, docker_client, repo, ["1.3.0"])
    ctx.store.quarantine(project=project, service="api", revision="r-bad", tag="1.3.0",
                         reason="crashed", at=time.time())  # fmt: skip
    again = automation(ctx).scan(t, policy, "1.1.0")
    assert again.chosen is None
    assert "1.1.0" in s.desired_file.read_text()


def test_pattern_policy_proposes_on_a_branch_and_leaves_the_tracked_one(
    registry: RegistryServer, docker_client: Any, tmp_stack: TmpStack, project: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
    repo = f"auto/{project}"
    push_tags(registry, docker_client, repo, ["1.0.0"])
    local = ensure_app_image("1.0.0-reg", client=docker_client)
    for build in ("main-9", "main-10", "dev-99"):
        registry.push(docker_client, local, repo, build)
    pol = {"pattern": "main-(?P<v>[0-9]+)", "order": "numerical", "branch": "berth/updates"}
    s = tmp_stack(compose(registry, repo, pol), {"api": {"tag": "main-9"}})
    repo_of(s.root)
    head = git(s.root, "rev-parse", "HEAD")
    ctx = Context(str(s.desired_dir), str(s.state_dir), None)
    t = next(t for t in ctx.config().targets if t.service == "api")
    assert t.spec.berth.update == UpdatePolicy(pattern="main-(?P<v>[0-9]+)", branch="berth/updates")
    auto = automation(ctx)
    scan = auto.scan(t, t.spec.berth.update, "main-9")
    assert scan.chosen == "main-10"  # numerically, not alphabetically ("main-9" > "main-10")
    assert git(s.root, "rev-parse", "HEAD") == head  # the tracked branch did not move
    assert "main-9" in s.desired_file.read_text()
    proposed = git(s.root, "show", "berth/updates:desired/stack.yaml")
    assert "main-10" in proposed
    assert git(s.root, "rev-parse", "berth/updates^") == head
    # proposed once: the next scan does not rebuild the branch
    tip = git(s.root, "rev-parse", "berth/updates")
    auto.scan(t, t.spec.berth.update, "main-9")
    assert git(s.root, "rev-parse", "berth/updates") == tip
    # a reviewer commits on the proposal branch; a newer build must not erase that
    git(s.root, "update-ref", "refs/heads/berth/updates", head)
    registry.push(docker_client, local, repo, "main-11")
    later = automation(ctx).scan(t, t.spec.berth.update, "main-9")
    assert later.chosen == "main-11" and later.error and "never overwritten" in later.error
    assert git(s.root, "rev-parse", "berth/updates") == head


def test_a_branch_berth_did_not_make_is_never_taken_over(
    registry: RegistryServer, docker_client: Any, tmp_stack: TmpStack, project: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
    repo = f"auto/{project}"
    push_tags(registry, docker_client, repo, ["1.0.0", "1.1.0"])
    pol = {"semver": "^1", "branch": "release"}
    s = tmp_stack(compose(registry, repo, pol), {"api": {"tag": "1.0.0"}})
    repo_of(s.root)
    git(s.root, "branch", "release")  # the team's own branch, not Berth's
    before = git(s.root, "rev-parse", "release")
    ctx = Context(str(s.desired_dir), str(s.state_dir), None)
    t = next(t for t in ctx.config().targets if t.service == "api")
    assert t.spec.berth.update is not None
    scan = automation(ctx).scan(t, t.spec.berth.update, "1.0.0")
    assert scan.error and "never overwritten" in scan.error
    assert git(s.root, "rev-parse", "release") == before


def settle(cond: Callable[[], bool], log: Path, what: str) -> None:
    try:
        wait_for(cond, 60, what)
    except AssertionError:
        raise AssertionError(what + "\n" + "\n".join(log.read_text().splitlines()[-30:])) from None


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[GitServer]:
    with git_http_server(tmp_path / "server") as s:
        yield s


def test_remote_source_registry_push_becomes_a_pushed_commit_and_a_rollout(
    registry: RegistryServer, docker_client: Any, project: str, tmp_path: Path,
    server: GitServer, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """berth run --git-url: a new tag in the registry -> a commit pushed to the remote
    branch by automation -> the sync takes it -> the rollout; quarantined tags never."""
    monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
    repo = f"auto/{project}"
    push_tags(registry, docker_client, repo, ["1.0.0"])
    server.create()
    work = server.clone(tmp_path / "dev")
    doc = {"name": project, **compose(registry, repo, {"semver": "^1", "interval": "10s"})}
    work.write("compose/docker-compose.yml", json.dumps(doc))
    desired = {"project": project, "compose": "../compose/docker-compose.yml",
               "services": {"api": {"tag": "1.0.0"}}}  # fmt: skip
    work.write("desired/stack.yaml", json.dumps(desired, indent=2) + "\n")
    work.commit("initial")
    work.push()
    extra = ["--git-url", server.url(), "--git-interval", "3600"]
    env = {"BERTH_GIT_TOKEN": server.token, "DOCKER_CONFIG": str(registry.docker_config)}
    with berth_run(tmp_path / "unused", tmp_path / "state", log=tmp_path / "berth.log",
                   extra=extra, env_extra=env) as d:  # fmt: skip
        running = lambda: [c.labels.get("berth.tag") for c in docker_client.containers.list(  # noqa: E731
            filters={"label": f"com.docker.compose.project={project}"})]  # fmt: skip
        settle(lambda: running() == ["1.0.0"], d.log, "1.0.0 never ran")
        push_tags(registry, docker_client, repo, ["1.4.0"])
        settle(lambda: running() == ["1.4.0"], d.log, "automation never rolled 1.4.0 out")
        bare = server.bare()
        subject = subprocess.run(["git", "-C", str(bare), "log", "-1", "--format=%s", "main"],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "image update" in subject and "1.4.0" in subject
        assert d.metric("berth_image_updates_total", project=project, service="api",
                        result="committed") == 1  # fmt: skip
        src = d.get("/status/source").json()
        assert src["commit"] == git(bare, "rev-parse", "main")
        updates = d.get("/status/updates").json()
        assert any(u["chosen"] == "1.4.0" and u["commit"] for u in updates), updates
