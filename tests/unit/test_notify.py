"""controller/core/notify.py: which notice an ending is, what its title promises, and the
dedup policy ("one per change"), table-driven."""

from __future__ import annotations

import pytest

from controller.core.notify import (
    LOG_LINE_CHARS,
    LOG_LINES,
    LOG_TOTAL_CHARS,
    Ending,
    Kind,
    Notice,
    Seen,
    Severity,
    admit,
    bound_lines,
    clean,
    failed_container,
    notice_for,
    sync_failed_notice,
)
from controller.core.outcome import Outcome


def ending(outcome: Outcome, **kw: object) -> Ending:
    base: dict[str, object] = {
        "project": "shop",
        "service": "api",
        "outcome": outcome,
        "reason": "bt-api-abcdef12-1 exited with code 1",
        "from_tag": "1.0.0",
        "to_tag": "2.0.0",
        "revision": "rev2",
        "commit": "c0ffee",
    }
    base.update(kw)
    return Ending(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "extra", "kind", "severity"),
    [
        (Outcome.SUCCEEDED, {}, Kind.SUCCEEDED, Severity.SUCCESS),
        (Outcome.ROLLED_BACK, {}, Kind.ROLLED_BACK, Severity.WARNING),
        (Outcome.ROLLED_BACK, {"quarantined": True}, Kind.ROLLED_BACK, Severity.WARNING),
        (Outcome.FAILED, {}, Kind.FAILED, Severity.FAILURE),
        (Outcome.ROLLED_BACK, {"canary": True}, Kind.CANARY_ABORTED, Severity.WARNING),
        (Outcome.FAILED, {"canary": True}, Kind.CANARY_ABORTED, Severity.WARNING),
        (Outcome.QUARANTINED, {}, Kind.QUARANTINED, Severity.WARNING),
        (Outcome.SUPERSEDED, {}, None, None),
        (Outcome.UNCHANGED, {}, None, None),
        (Outcome.IN_PROGRESS, {}, None, None),
    ],
)
def test_kind_and_severity_per_outcome(
    outcome: Outcome, extra: dict[str, object], kind: Kind | None, severity: Severity | None
) -> None:
    n = notice_for(ending(outcome, **extra))
    if kind is None:
        assert n is None
        return
    assert n is not None and n.kind is kind and n.severity is severity


@pytest.mark.parametrize(
    ("outcome", "extra"),
    [
        (Outcome.ROLLED_BACK, {}),
        (Outcome.ROLLED_BACK, {"quarantined": True}),
        (Outcome.FAILED, {}),
        (Outcome.FAILED, {"quarantined": True}),
        (Outcome.ROLLED_BACK, {"canary": True}),
        (Outcome.QUARANTINED, {}),
    ],
)
def test_a_bad_ending_never_reads_as_done(outcome: Outcome, extra: dict[str, object]) -> None:
    n = notice_for(ending(outcome, **extra))
    assert n is not None
    for word in ("done", "succeeded", "success", "is live", "deployed "):
        assert word not in n.title.lower()
    assert "2.0.0" in n.title


def test_a_quarantine_is_said_inside_the_one_rollback_notice() -> None:
    n = notice_for(ending(Outcome.ROLLED_BACK, quarantined=True))
    assert n is not None and n.kind is Kind.ROLLED_BACK and n.quarantined
    assert "quarantined" in n.title and "berth retry api" in n.body


def test_the_notice_carries_the_evidence() -> None:
    n = notice_for(
        ending(
            Outcome.ROLLED_BACK,
            reason="canary analysis failed at step 1 (10%): success rate 80.0% < 99%",
            log_tail=("starting", "panic: db down"),
            container="shop-api-abcdef12-1",
        )
    )
    assert n is not None
    assert n.reason.startswith("canary analysis failed") and "80.0% < 99%" in n.body
    assert n.evidence == ("starting", "panic: db down")
    assert "last 2 log line(s) of shop-api-abcdef12-1:" in n.body
    assert "  panic: db down" in n.body
    assert "commit: c0ffee" in n.body and "tag: 1.0.0 -> 2.0.0" in n.body
    assert (n.project, n.service, n.from_tag, n.to_tag) == ("shop", "api", "1.0.0", "2.0.0")


def test_success_title_and_removal() -> None:
    n = notice_for(ending(Outcome.SUCCEEDED, reason="2 replica(s) healthy"))
    assert n is not None and n.title == "shop/api: 2.0.0 is live (was 1.0.0)"
    gone = notice_for(ending(Outcome.SUCCEEDED, to_tag=None, revision=None, reason="removed"))
    assert gone is not None and gone.title == "shop/api: removed"


# -- dedup ---------------------------------------------------------------------------------


def n_(kind_outcome: Outcome, revision: str = "rev2", **kw: object) -> Notice:
    n = notice_for(ending(kind_outcome, revision=revision, **kw))
    assert n is not None
    return n


FAIL, BACK, OK, QUAR = Outcome.FAILED, Outcome.ROLLED_BACK, Outcome.SUCCEEDED, Outcome.QUARANTINED


@pytest.mark.parametrize(
    ("sequence", "sent"),
    [
        # a failure retried with backoff: once
        ([(FAIL, "r2"), (FAIL, "r2"), (FAIL, "r2")], [True, False, False]),
        # ... then it succeeds: news
        ([(FAIL, "r2"), (FAIL, "r2"), (OK, "r2")], [True, False, True]),
        # a new revision fails the same way: news
        ([(BACK, "r2"), (BACK, "r3")], [True, True]),
        # the quarantined passes after the rollback that quarantined: nothing more
        ([(BACK, "r2"), (QUAR, "r2"), (QUAR, "r2")], [True, False, False]),
        # a quarantined revision found without a rollout in this process: said once
        ([(QUAR, "r2"), (QUAR, "r2")], [True, False]),
        # drift corrections of a converged revision: not every time
        ([(OK, "r2"), (OK, "r2")], [True, False]),
        # a different outcome on the same revision is news
        ([(OK, "r2"), (FAIL, "r2"), (FAIL, "r2"), (OK, "r2")], [True, True, False, True]),
        # back to an older revision after another: news
        ([(BACK, "r2"), (BACK, "r3"), (BACK, "r2")], [True, True, True]),
    ],
)
def test_one_notice_per_change(sequence: list[tuple[Outcome, str]], sent: list[bool]) -> None:
    seen: Seen | None = None
    got = []
    for outcome, rev in sequence:
        ok, seen = admit(seen, n_(outcome, rev))
        got.append(ok)
    assert got == sent


def test_sync_failures_dedup_on_the_error() -> None:
    a = sync_failed_notice("git@host:repo", "connection refused", "abc123")
    b = sync_failed_notice("git@host:repo", "auth failed", "abc123")
    ok1, seen = admit(None, a)
    ok2, seen = admit(seen, a)
    ok3, seen = admit(seen, b)
    assert (ok1, ok2, ok3) == (True, False, True)
    assert a.kind is Kind.SYNC_FAILED and a.severity is Severity.FAILURE
    assert "abc123" in a.body and "git@host:repo" in a.title


# -- hostile text --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "want"),
    [
        ("plain", 10, "plain"),
        ("a\nb\rc\td", 20, "a b c d"),
        ("\x1b[31mred\x1b[0m", 20, "?[31mred?[0m"),
        ("nul\x00here", 20, "nul?here"),
        ("x" * 50, 10, "x" * 9 + "…"),
        ("bad \ufffd bytes", 20, "bad \ufffd bytes"),
        ("", 5, ""),
        (None, 5, ""),
    ],
)
def test_clean(text: str | None, limit: int, want: str) -> None:
    assert clean(text, limit) == want


def test_bound_lines_keeps_the_last_lines_within_every_bound() -> None:
    lines = [f"line {i}" for i in range(100)]
    got = bound_lines(lines)
    assert len(got) == LOG_LINES and got[-1] == "line 99" and got[0] == "line 80"
    wide = bound_lines(["y" * 100_000] * 50)
    assert all(len(x) <= LOG_LINE_CHARS for x in wide)
    assert sum(len(x) for x in wide) <= LOG_TOTAL_CHARS
    assert wide  # the newest lines survive


def test_a_huge_reason_is_bounded() -> None:
    n = n_(BACK, reason="boom " * 100_000, log_tail=("z" * 10**6,) * 30)
    assert len(n.body) < 6000 and len(n.title) < 700


@pytest.mark.parametrize(
    ("candidates", "reason", "keep", "want"),
    [
        ([("a", "p-api-1", True), ("b", "p-api-2", False)], "p-api-1 exited", "b", "a"),
        ([("a", "p-api-1", True), ("b", "p-api-2", False)], "probe failed", "a", "b"),
        ([("a", "p-api-1", True), ("b", "p-api-2", True)], "not healthy", "b", "b"),
        ([("a", "", True)], "x", None, "a"),
        ([], "x", None, None),
    ],
)
def test_failed_container(
    candidates: list[tuple[str, str, bool]], reason: str, keep: str | None, want: str | None
) -> None:
    assert failed_container(candidates, reason, keep) == want
