"""`berth run --git-url` end to end: a real git server (nginx + git-http-backend, token
auth), a real Docker engine and the app image. A push plus a signed webhook rolls out (the
poll interval is an hour, so only the webhook can have caused it); a force-push is
refused and the last good commit keeps running; bad signatures, replays and oversized
bodies are refused and counted; /status/source shows the commit; the token shows nowhere."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_apply import compose
from tests.integration.test_daemon import tags
from tests.support.daemon import Running, berth_run, wait_for
from tests.support.git_server import GitServer, Work, git, git_http_server
from tests.support.receiver import Receiver, receiver

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SECRET = "webhook-secret-0c1d"


@pytest.fixture()
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[GitServer]:
    with git_http_server(tmp_path / "server") as s:
        yield s


def desired(project: str, tag: str) -> str:
    doc = {"project": project, "compose": "../compose/docker-compose.yml",
           "services": {"api": {"tag": tag}}}  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"


def hook(d: Running, body: bytes, *, delivery: str, secret: str = SECRET) -> httpx.Response:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Event": "push",
               "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}  # fmt: skip
    return httpx.post(d.url + "/hooks/git", content=body, headers=headers, timeout=10,
                      trust_env=False)  # fmt: skip


def push_event(after: str) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "after": after}).encode()


def start(server: GitServer, tmp_path: Path, project: str) -> tuple[Work, Path, Path]:
    server.create()
    work = server.clone(tmp_path / "dev")
    work.write("compose/docker-compose.yml", json.dumps({"name": project, **compose(replicas=1)}))
    work.write("desired/stack.yaml", desired(project, "1.0.0"))
    work.commit("initial")
    work.push()
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET + "\n")
    state = tmp_path / "state"
    return work, secret, state


def test_push_and_webhook_roll_out_force_push_refused(
    docker_client: Any, app_image: Any, project: str, tmp_path: Path, server: GitServer,
    rx: Receiver,
) -> None:  # fmt: skip
    app_image("1.0.0")
    app_image("2.0.0")
    work, secret, state = start(server, tmp_path, project)
    extra = ["--git-url", server.url(), "--git-interval", "3600",
             "--webhook-secret-file", str(secret), "--notify", rx.url]  # fmt: skip
    env = {"BERTH_GIT_TOKEN": server.token}
    with berth_run(tmp_path / "unused", state, log=tmp_path / "berth.log", extra=extra,
                   env_extra=env) as d:  # fmt: skip
        assert tags(docker_client, project) == ["1.0.0"]
        # a push and its webhook: the rollout happens
        work.write("desired/stack.yaml", desired(project, "2.0.0"))
        new = work.commit("api 2.0.0")
        work.push()
        r = hook(d, push_event(new), delivery="d-1")
        assert r.status_code == 202, r.text
        wait_for(lambda: tags(docker_client, project) == ["2.0.0"], 60, "2.0.0 never rolled out")
        source = d.get("/status/source").json()
        assert source["commit"] == new and source["last_result"] == "success"
        assert source["url"] == server.url() and source["branch"] == "main"
        # the same delivery again: 409, no sync
        assert hook(d, push_event(new), delivery="d-1").status_code == 409
        # bad signature, too large, other branch
        assert hook(d, push_event(new), delivery="d-2", secret="wrong").status_code == 403
        big = httpx.post(d.url + "/hooks/git", content=b"x" * (2 << 20), timeout=10,
                         trust_env=False)  # fmt: skip
        assert big.status_code == 413
        dev = json.dumps({"ref": "refs/heads/dev"}).encode()
        assert hook(d, dev, delivery="d-3").status_code == 202  # ignored
        # a force-push (history rewritten to another tag): refused, 2.0.0 keeps running
        git(work.path, "reset", "-q", "--hard", "HEAD~1")
        work.write("desired/stack.yaml", desired(project, "1.0.0") + "# rewritten\n")
        forced = work.commit("rewrite")
        work.push(force=True)
        assert hook(d, push_event(forced), delivery="d-4").status_code == 202
        wait_for(
            lambda: d.get("/status/source").json()["last_result"] == "rejected",
            30,
            "force-push not refused",
        )
        source = d.get("/status/source").json()
        assert source["commit"] == new and "not a fast-forward" in source["last_error"]
        assert tags(docker_client, project) == ["2.0.0"]
        # the refused sync is a notice, once; it names the remote without credentials
        wait_for(lambda: any("sync" in t.lower() for t in rx.titles()), 30, "no sync notice")
        sync = [p for p in rx.payloads if "sync" in str(p.get("title")).lower()]
        assert len(sync) == 1 and "not a fast-forward" in str(sync[0].get("message"))
        assert server.token not in json.dumps(rx.payloads)
        for result, n in (("accepted", 2), ("replayed", 1), ("bad_signature", 1),
                          ("too_large", 1), ("ignored", 1)):  # fmt: skip
            assert d.metric("berth_webhooks_total", result=result) == n, result
        assert d.metric("berth_git_sync_total", result="rejected") == 1
        assert d.metric("berth_git_sync_consecutive_failures") == 1
        assert d.metric("berth_git_sync_interval_seconds") == 3600
        status = d.get("/status").json()
        assert status[0]["desired_tag"] == "2.0.0"  # /status keeps its shape
    log = d.log.read_text()
    assert server.token not in log and "git: now at" in log
    checkout = state / "git" / "checkout"
    assert server.token not in (checkout / ".git" / "config").read_text()


def test_without_a_secret_the_hook_is_404(
    docker_client: Any, app_image: Any, project: str, tmp_path: Path, server: GitServer
) -> None:
    app_image("1.0.0")
    _, _, state = start(server, tmp_path, project)
    extra = ["--git-url", server.url(), "--git-interval", "3600"]
    env = {"BERTH_GIT_TOKEN": server.token}
    with berth_run(tmp_path / "unused", state, log=tmp_path / "berth.log", extra=extra,
                   env_extra=env) as d:  # fmt: skip
        r = httpx.post(d.url + "/hooks/git", content=push_event("a"), timeout=10,
                       trust_env=False)  # fmt: skip
        assert r.status_code == 404
        assert d.metric("berth_webhooks_total", result="accepted") is None
