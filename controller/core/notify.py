"""Notifications, decided: what a rollout's ending tells the team, and whether to tell it.

Pure (no I/O, no clock): the shell hands in how a pass ended, this module returns a
`Notice` (or None: nothing worth a message), and `admit` decides whether that notice repeats
one already sent. Delivery (Apprise, a queue, a thread) lives in
`controller/adapters/notify_apprise.py`; the glue in `controller/shell/rollout/notify.py`.

Why here: what a title says is a promise to whoever reads it at 3 a.m. A rollback must never
read as "done", a quarantined tag must be said once (not as a rollback *and* a quarantine),
and a failure retried with backoff must not page every few seconds. Those are decisions,
so they are pure functions with table-driven tests (tests/unit/test_notify.py).

Everything that comes from the world (reasons, log lines, tags) is bounded and stripped of
control characters here: a container's log is hostile input (escape sequences, megabyte
lines, bytes that were not UTF-8 and came back as U+FFFD).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from controller.core.outcome import Outcome

LOG_LINES = 20  # last lines of the failed container carried as evidence
LOG_LINE_CHARS = 300  # each line cut to this
LOG_TOTAL_CHARS = 4000  # all lines together (the oldest go first)
REASON_CHARS = 1000
FIELD_CHARS = 200  # tags, names, commit, source


class Kind(StrEnum):
    """The closed set of notices (a label of berth_notifications_total)."""

    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    QUARANTINED = "quarantined"  # a pass found the desired revision quarantined (no rollout)
    FAILED = "failed"
    CANARY_ABORTED = "canary_aborted"
    SYNC_FAILED = "sync_failed"


class Severity(StrEnum):
    """Apprise's notify types, by value (the adapter maps one to the other)."""

    SUCCESS = "success"
    INFO = "info"
    WARNING = "warning"
    FAILURE = "failure"


SEVERITY = {
    Kind.SUCCEEDED: Severity.SUCCESS,
    Kind.ROLLED_BACK: Severity.WARNING,  # the old version still serves
    Kind.CANARY_ABORTED: Severity.WARNING,  # so does it here
    Kind.QUARANTINED: Severity.WARNING,
    Kind.FAILED: Severity.FAILURE,  # nothing of the new version serves, maybe nothing at all
    Kind.SYNC_FAILED: Severity.FAILURE,
}
BAD_KINDS = frozenset({Kind.ROLLED_BACK, Kind.FAILED, Kind.CANARY_ABORTED, Kind.QUARANTINED})


@dataclass(frozen=True)
class Notice:
    kind: Kind
    title: str
    body: str
    subject: str  # what dedup keys on: "project/service", or "sync <source>"
    revision: str  # the revision (or tag, or sync error) this notice is about
    project: str | None = None
    service: str | None = None
    from_tag: str | None = None
    to_tag: str | None = None
    commit: str | None = None
    reason: str = ""
    evidence: tuple[str, ...] = ()  # the failed container's last log lines, bounded
    quarantined: bool = False

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]


@dataclass(frozen=True)
class Ending:
    """How one pass over a service ended, as the notifier needs it (the shell fills it from
    its RolloutResult; the core cannot import that)."""

    project: str
    service: str
    outcome: Outcome
    reason: str
    from_tag: str | None = None
    to_tag: str | None = None
    revision: str | None = None
    commit: str | None = None
    log_tail: Sequence[str] = ()
    container: str | None = None  # whose log_tail it is
    canary: bool = False  # the new revision was withdrawn from a canary (weight 0)
    quarantined: bool = False  # the rollout quarantined its revision


def kind_of(e: Ending) -> Kind | None:
    """Which notice an ending is, if any: superseded and unchanged passes say nothing."""
    if e.outcome is Outcome.SUCCEEDED:
        return Kind.SUCCEEDED
    if e.outcome.bad:
        if e.canary:
            return Kind.CANARY_ABORTED
        return Kind.ROLLED_BACK if e.outcome is Outcome.ROLLED_BACK else Kind.FAILED
    if e.outcome is Outcome.QUARANTINED:
        return Kind.QUARANTINED
    return None


def notice_for(e: Ending) -> Notice | None:
    """The one notice of an ending. A quarantine is said inside the rollback/failure notice,
    never as a second notice."""
    kind = kind_of(e)
    if kind is None:
        return None
    where = f"{clean(e.project, FIELD_CHARS)}/{clean(e.service, FIELD_CHARS)}"
    new = clean(e.to_tag or "?", FIELD_CHARS)
    old = clean(e.from_tag, FIELD_CHARS) if e.from_tag else None
    reason = clean(e.reason, REASON_CHARS)
    evidence = bound_lines(e.log_tail)
    title = _title(kind, where, new, old, e)
    lines = [f"{where}: {_summary(kind, new, old, e)}"]
    if reason:
        lines.append(f"reason: {reason}")
    lines.append(f"tag: {old or '-'} -> {new}")
    if e.commit:
        lines.append(f"commit: {clean(e.commit, FIELD_CHARS)}")
    if e.quarantined or kind is Kind.QUARANTINED:
        lines.append(
            f"quarantined: {new} is not retried until desired/ changes or "
            f"`berth retry {clean(e.service, FIELD_CHARS)}`"
        )
    if evidence:
        who = clean(e.container, FIELD_CHARS) if e.container else "the failed container"
        lines.append(f"last {len(evidence)} log line(s) of {who}:")
        lines.extend(f"  {line}" for line in evidence)
    return Notice(
        kind=kind,
        title=title,
        body="\n".join(lines),
        subject=f"{e.project}/{e.service}",
        revision=e.revision or e.to_tag or "",
        project=e.project,
        service=e.service,
        from_tag=e.from_tag,
        to_tag=e.to_tag,
        commit=e.commit,
        reason=reason,
        evidence=evidence,
        quarantined=e.quarantined or kind is Kind.QUARANTINED,
    )


def _title(kind: Kind, where: str, new: str, old: str | None, e: Ending) -> str:
    q = " (quarantined)" if e.quarantined else ""
    match kind:
        case Kind.SUCCEEDED:
            if e.to_tag is None:
                return f"{where}: removed"
            return f"{where}: {new} is live" + (f" (was {old})" if old and old != new else "")
        case Kind.ROLLED_BACK:
            return f"{where}: {new} rolled back{q}, {old or 'the previous version'} serves"
        case Kind.CANARY_ABORTED:
            return f"{where}: canary of {new} aborted{q}, {old or 'the stable version'} serves"
        case Kind.FAILED:
            return f"{where}: {new} failed to deploy{q}"
        case Kind.QUARANTINED:
            return f"{where}: {new} is quarantined, not deployed"
        case Kind.SYNC_FAILED:
            raise AssertionError("sync notices are built by sync_failed_notice")


def _summary(kind: Kind, new: str, old: str | None, e: Ending) -> str:
    return {
        Kind.SUCCEEDED: f"{new} passed its gate and serves",
        Kind.ROLLED_BACK: f"{new} did not pass; {old or 'the old version'} still serves",
        Kind.CANARY_ABORTED: f"the canary of {new} was withdrawn (weight 0)",
        Kind.FAILED: f"{new} did not take and nothing of it serves",
        Kind.QUARANTINED: f"desired/ asks for {new}, a revision that failed before",
    }[kind]


def sync_failed_notice(source: str, error: str, commit: str | None) -> Notice:
    """The desired state could not be fetched from `source` (a remote git, say)."""
    src = clean(source, FIELD_CHARS)
    err = clean(error, REASON_CHARS)
    lines = [f"cannot sync desired state from {src}", f"error: {err}"]
    if commit:
        lines.append(f"last good commit: {clean(commit, FIELD_CHARS)} (still in force)")
    return Notice(
        kind=Kind.SYNC_FAILED,
        title=f"desired state sync failed: {src}",
        body="\n".join(lines),
        subject=f"sync {source}",
        revision=err,
        commit=commit,
        reason=err,
    )


# -- dedup: one notice per change ------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What was last notified about one subject."""

    revision: str
    last: Kind
    kinds: frozenset[Kind] = field(default_factory=frozenset)  # all sent for this revision


def admit(seen: Seen | None, n: Notice) -> tuple[bool, Seen | None]:
    """Whether to send `n`, and what is remembered afterwards.

    The same (subject, revision, kind) is never sent twice in a row: a failure retried with
    backoff says so once. A new revision or a different outcome is news. A `quarantined`
    pass after the rollout that quarantined the revision is not (the rollback said it)."""
    if seen is None or seen.revision != n.revision:
        return True, Seen(n.revision, n.kind, frozenset({n.kind}))
    if n.kind is seen.last:
        return False, seen
    if n.kind is Kind.QUARANTINED and seen.kinds & BAD_KINDS:
        return False, seen
    return True, Seen(n.revision, n.kind, seen.kinds | {n.kind})


# -- evidence --------------------------------------------------------------------------------


def clean(text: str | None, limit: int) -> str:
    """One line of hostile text made safe to show: control characters (escape sequences,
    newlines, NUL) become spaces or '?', and it is cut to `limit` characters."""
    if not text:
        return ""
    out = []
    for ch in text[: limit * 2]:
        if ch in "\n\r\t":
            out.append(" ")
        elif ch < " " or "\x7f" <= ch < "\xa0" or ch in "\u2028\u2029":
            out.append("?")
        else:
            out.append(ch)
    s = "".join(out).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def bound_lines(
    lines: Iterable[str],
    *,
    count: int = LOG_LINES,
    width: int = LOG_LINE_CHARS,
    total: int = LOG_TOTAL_CHARS,
) -> tuple[str, ...]:
    """The last `count` lines, each cut to `width`, together at most `total` characters
    (older lines are dropped first: the end of a log says why it ended)."""
    kept: list[str] = []
    size = 0
    for raw in reversed(list(lines)[-count:]):
        line = clean(raw, width)
        if size + len(line) > total:
            break
        kept.append(line)
        size += len(line)
    return tuple(reversed(kept))


def failed_container(
    candidates: Sequence[tuple[str, str, bool]], reason: str, keep: str | None
) -> str | None:
    """Whose logs are the evidence, among the new containers an abort is about to remove:
    (id, name, running) each. The one the reason names; else one that is not running (it
    exited or crashed); else the one kept for `docker logs`; else the first."""
    for cid, name, _ in candidates:
        if name and name in reason:
            return cid
    for cid, _, running in candidates:
        if not running:
            return cid
    if keep is not None:
        return keep
    return candidates[0][0] if candidates else None
