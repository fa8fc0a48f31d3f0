"""How a rollout (or a pass over one service) ended: one closed set, used everywhere.

The store records it, metrics count it, the daemon and the CLI decide on it, so it is one
enum instead of strings spelled again in each place. A StrEnum: it is stored, logged and
compared as the plain word.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"  # the old version serves again
    FAILED = "failed"  # nothing served before, or the rollback itself could not complete
    SUPERSEDED = "superseded"  # a newer desired revision took over before the cut-over
    IN_PROGRESS = "in_progress"  # only in the store: a rollout that has not ended
    UNCHANGED = "unchanged"  # a pass with nothing to do
    QUARANTINED = "quarantined"  # a pass that found the desired revision quarantined

    @property
    def is_rollout(self) -> bool:
        """An ended rollout (counted in berth_rollouts_total), not a no-op pass."""
        return self in (Outcome.SUCCEEDED, Outcome.ROLLED_BACK, Outcome.FAILED)

    @property
    def ok(self) -> bool:
        """The service is converged on its desired revision."""
        return self in (Outcome.SUCCEEDED, Outcome.UNCHANGED)

    @property
    def bad(self) -> bool:
        """The desired revision did not take: `apply` exits 3, notifications warn."""
        return self in (Outcome.ROLLED_BACK, Outcome.FAILED)

    @property
    def final(self) -> bool:
        """A record with this outcome will not change any more."""
        return self is not Outcome.IN_PROGRESS


class NextPass(StrEnum):
    """When a service is reconciled again after a pass ended."""

    NOW = "now"  # superseded: the newer revision is waiting
    BACKOFF = "backoff"  # failed, and not for the revision's sake (pull, nginx): retry
    WAIT = "wait"  # converged, or quarantined: until desired/ or the containers change


def next_pass(outcome: Outcome, *, quarantined: bool) -> NextPass:
    """The retry policy, in one place: a failure that quarantined its revision waits for a
    change (a terminal error); any other failure is transient and retried with backoff."""
    if outcome is Outcome.SUPERSEDED:
        return NextPass.NOW
    if outcome.bad and not quarantined:
        return NextPass.BACKOFF
    return NextPass.WAIT


RECORDED = (
    Outcome.SUCCEEDED,
    Outcome.ROLLED_BACK,
    Outcome.FAILED,
    Outcome.SUPERSEDED,
    Outcome.IN_PROGRESS,
)  # what a rollout record in the store can hold
