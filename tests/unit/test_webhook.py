"""core/webhook.py: signatures in every accepted format, hostile inputs, the replay window,
branches and events (pure: no server, no clock)."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote

import pytest

from controller.core.webhook import (
    HTTP_STATUS,
    ReplayWindow,
    Verdict,
    delivery_and_event,
    judge,
    pushed_ref,
    signature_problem,
)

SECRET = b"s3cret"
BODY = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()


def sig(body: bytes = BODY, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def github(body: bytes = BODY, delivery: str = "d-1", event: str = "push") -> dict[str, str]:
    return {
        "X-Hub-Signature-256": "sha256=" + sig(body),
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


def gitea(body: bytes = BODY, delivery: str = "d-1") -> dict[str, str]:
    return {"X-Gitea-Signature": sig(body), "X-Gitea-Delivery": delivery, "X-Gitea-Event": "push"}


def run(body: bytes, headers: dict[str, str], window: ReplayWindow | None = None) -> Verdict:
    w = window or ReplayWindow()
    return judge(SECRET, body, headers, branch="main", window=w, now=1000.0).verdict


@pytest.mark.parametrize("make", [github, gitea])
def test_valid_push_to_our_branch_is_accepted(make: object) -> None:
    assert run(BODY, make()) is Verdict.ACCEPTED  # type: ignore[operator]


@pytest.mark.parametrize("name", ["X-Forgejo-Signature", "X-Gogs-Signature", "x-gitea-signature"])
def test_other_forges_and_any_header_case(name: str) -> None:
    assert signature_problem(SECRET, BODY, {name: sig()}) is None


def test_upper_case_hex_is_the_same_digest() -> None:
    assert signature_problem(SECRET, BODY, {"X-Gitea-Signature": sig().upper()}) is None


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "no signature header"),
        ({"X-Hub-Signature-256": sig()}, "does not start with"),  # prefix missing
        ({"X-Hub-Signature": "sha1=" + "0" * 40}, "no signature header"),  # sha1 only: refused
        ({"X-Hub-Signature-256": "sha256=" + sig()[:-1]}, "64 hex"),  # wrong length
        ({"X-Hub-Signature-256": "sha256=" + sig() + "00"}, "64 hex"),
        ({"X-Gitea-Signature": "zz" + sig()[2:]}, "64 hex"),  # bad hex
        ({"X-Gitea-Signature": "sha256=" + sig()}, "64 hex"),  # GitHub style in Gitea's
        ({"X-Gitea-Signature": "a" * 100_000}, "too long"),  # huge header
        ({"X-Gitea-Signature": sig(secret=b"other")}, "does not match"),
        ({"X-Gitea-Signature": sig(b"another body")}, "does not match"),
        ({"X-Gitea-Signature": ""}, "64 hex"),
    ],
)
def test_bad_signatures(headers: dict[str, str], why: str) -> None:
    problem = signature_problem(SECRET, BODY, headers)
    assert problem is not None and why in problem
    assert run(BODY, {**headers, "X-Gitea-Delivery": "x"}) is Verdict.BAD_SIGNATURE


def test_bad_signature_does_not_enter_the_replay_window() -> None:
    w = ReplayWindow()
    forged = {**github(), "X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert run(BODY, forged, w) is Verdict.BAD_SIGNATURE
    assert run(BODY, github(), w) is Verdict.ACCEPTED  # not poisoned by the forgery


def test_replay_by_delivery_id_and_by_body() -> None:
    w = ReplayWindow()
    assert run(BODY, github(delivery="a"), w) is Verdict.ACCEPTED
    assert run(BODY, github(delivery="a"), w) is Verdict.REPLAYED
    # the delivery id is not signed: a captured body under a fresh id is still a replay
    assert run(BODY, github(delivery="b"), w) is Verdict.REPLAYED
    other = json.dumps({"ref": "refs/heads/main", "after": "b" * 40}).encode()
    assert run(other, github(other, delivery="a"), w) is Verdict.REPLAYED  # id seen
    third = json.dumps({"ref": "refs/heads/main", "after": "c" * 40}).encode()
    assert run(third, github(third, delivery="c"), w) is Verdict.ACCEPTED


def test_replay_window_is_bounded_and_expires() -> None:
    w = ReplayWindow(size=3, ttl=10.0)
    for i in range(10):
        assert not w.seen([f"k{i}"], now=float(i) / 100)
    assert not w.seen(["k0"], now=0.5)  # evicted: the window holds at most 2 * size keys
    assert w.seen(["k9"], now=0.6)
    assert not w.seen(["k9"], now=100.0)  # expired


def test_other_branch_and_other_events_are_ignored() -> None:
    body = json.dumps({"ref": "refs/heads/dev"}).encode()
    assert run(body, github(body)) is Verdict.IGNORED
    tag = json.dumps({"ref": "refs/tags/main"}).encode()
    assert run(tag, github(tag)) is Verdict.IGNORED
    assert run(BODY, github(event="ping")) is Verdict.IGNORED
    assert run(BODY, github(event="pull_request")) is Verdict.IGNORED


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe", b"[]", b'{"ref": 5}', b"{}", b'"refs/heads/main"', b"[" * 5000],
)
def test_signed_but_unreadable_bodies_are_malformed(body: bytes) -> None:
    assert run(body, github(body)) is Verdict.MALFORMED


def test_github_form_encoded_payload() -> None:
    body = ("payload=" + quote(BODY.decode())).encode()
    headers = {**github(body), "Content-Type": "application/x-www-form-urlencoded"}
    assert run(body, headers) is Verdict.ACCEPTED
    assert pushed_ref(b"payload=%7B", "application/x-www-form-urlencoded") is None


def test_delivery_and_event_headers() -> None:
    assert delivery_and_event(gitea(delivery="g")) == ("g", "push")
    assert delivery_and_event({"X-GitHub-Delivery": " " * 3}) == (None, None)
    assert delivery_and_event({"X-GitHub-Delivery": "x" * 1000}) == (None, None)


def test_every_verdict_has_a_status() -> None:
    assert set(HTTP_STATUS) == set(Verdict)
    assert HTTP_STATUS[Verdict.BAD_SIGNATURE] == 403 and HTTP_STATUS[Verdict.REPLAYED] == 409
