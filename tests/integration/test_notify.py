"""Notifications end to end: real rollouts on the real Docker engine, notices delivered by
Apprise to a real HTTP receiver on 127.0.0.1 (`json://`), asserted on what arrived."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.core.outcome import Outcome
from controller.shell.daemon.metrics import Metrics
from controller.shell.daemon.reconciler import Reconciler
from controller.shell.wiring import Context
from tests.integration.test_apply import compose
from tests.support.berth import berth
from tests.support.receiver import Receiver, receiver

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture()
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def set_tag(desired_file: Path, tag: str) -> None:
    doc = json.loads(desired_file.read_text())
    doc["services"]["api"]["tag"] = tag
    desired_file.write_text(json.dumps(doc))


def test_apply_notifies_success_then_one_rollback_with_its_evidence(
    app_image: Callable[..., str], tmp_stack: Any, rx: Receiver
) -> None:
    app_image("1.0.0")
    app_image("2.0.0-crash", mode="crash")
    s = tmp_stack(compose(replicas=1), {"api": {"tag": "1.0.0"}})
    r = berth(s.desired_dir, s.state_dir, "apply", "--notify", rx.url)
    assert r.code == 0, r.err
    [ok] = rx.payloads
    assert ok["type"] == "success" and ok["title"] == f"{s.project}/api: 1.0.0 is live"

    set_tag(s.desired_file, "2.0.0-crash")
    r = berth(s.desired_dir, s.state_dir, "apply", "--notify", rx.url)
    assert r.code == 3, r.out + r.err
    assert len(rx.payloads) == 2
    bad = rx.payloads[1]
    assert bad["type"] == "warning"
    title, body = bad["title"], bad["message"]
    assert title == f"{s.project}/api: 2.0.0-crash rolled back (quarantined), 1.0.0 serves"
    assert "done" not in title.lower() and "succeeded" not in title.lower()
    assert "reason: " in body and "exited with code 1" in body  # the failing check
    assert "tag: 1.0.0 -> 2.0.0-crash" in body
    assert "berth-test/app: crash mode, exiting 1" in body  # the container's last words
    assert f"log line(s) of {s.project}-api-" in body

    # the quarantined revision again: no rollout, no second notice
    r = berth(s.desired_dir, s.state_dir, "apply", "--notify", rx.url)
    assert r.code in (0, 3)
    assert len(rx.payloads) == 2


def test_the_daemon_reconciler_notifies_a_retried_failure_once_then_the_recovery(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, rx: Receiver
) -> None:
    """The reconciler of `berth run`, in process: a pull failure is retried with backoff
    (not quarantined) and must not send a notice per attempt; the success after it does."""
    good = app_image("1.0.0")
    repo = "127.0.0.1:1/berth-notify-test"  # no registry there: the pull fails at once
    spec = compose(replicas=1)
    spec["services"]["api"]["image"] = repo
    s = tmp_stack(spec, {"api": {"tag": "7.0.0"}})
    ctx = Context(str(s.desired_dir), str(s.state_dir), None, notify=(("--notify", rx.url),))
    metrics = Metrics(CollectorRegistry())
    notifier = ctx.notifier(on_result=metrics.notification)
    rec = Reconciler(ctx, metrics, threading.Event(), notifier)
    rec.set_config(ctx.config())
    key = f"{s.project}/api"
    try:
        for _ in range(3):
            rec.world_changed()
            result = rec.reconcile(key)
            assert result is not None and result.requeue  # backoff, not quarantine
        sink = notifier._sink
        assert sink is not None and sink.flush(30)  # type: ignore[attr-defined]
        [failed] = rx.payloads
        assert failed["type"] == "failure"
        assert failed["title"] == f"{s.project}/api: 7.0.0 failed to deploy"
        assert "pull failed" in failed["message"]

        docker_client.images.get(good).tag(repo, "7.0.0")  # the image can be had now
        rec.world_changed()
        assert rec.reconcile(key) is None
        assert sink.flush(30)  # type: ignore[attr-defined]
        assert [p["type"] for p in rx.payloads] == ["failure", "success"]
        assert rx.payloads[1]["title"] == f"{s.project}/api: 7.0.0 is live"
        assert store_outcome(ctx, s.project) is Outcome.SUCCEEDED
    finally:
        notifier.close(5)
        docker_client.images.remove(f"{repo}:7.0.0", noprune=True)


def store_outcome(ctx: Context, project: str) -> Outcome | None:
    last = ctx.store.last(project, "api")
    return last.outcome if last else None


def test_a_rollout_that_raises_is_one_failed_notice(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, rx: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The engine goes away mid-rollout (here: create raises as an unreachable engine
    would): the pass raises for the work queue's backoff, and the team hears of it once."""
    from controller.errors import TemporaryError

    app_image("1.0.0")
    s = tmp_stack(compose(replicas=1), {"api": {"tag": "1.0.0"}})
    ctx = Context(str(s.desired_dir), str(s.state_dir), None, notify=(("--notify", rx.url),))
    metrics = Metrics(CollectorRegistry())
    notifier = ctx.notifier(on_result=metrics.notification)
    rec = Reconciler(ctx, metrics, threading.Event(), notifier)
    rec.set_config(ctx.config())

    def gone(**kw: Any) -> str:
        raise TemporaryError("create: Docker engine unreachable: connection refused")

    monkeypatch.setattr(ctx.runtime, "create", gone)
    try:
        for _ in range(2):
            rec.world_changed()
            with pytest.raises(TemporaryError):
                rec.reconcile(f"{s.project}/api")
        sink = notifier._sink
        assert sink is not None and sink.flush(30)  # type: ignore[attr-defined]
        [failed] = rx.payloads  # retried: still one notice
        assert failed["type"] == "failure" and "unreachable" in failed["message"]
    finally:
        notifier.close(5)
