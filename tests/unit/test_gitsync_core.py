"""core/gitsync.py: what a sync may accept (fast-forward, signers, the desired/ boundary),
--git-path and --git-url checks, credentials stripped from URLs."""

from __future__ import annotations

import pytest

from controller.core.gitsync import (
    CommitFacts,
    Policy,
    git_path,
    needs_signature,
    outside,
    range_problem,
    redact_url,
    url_problem,
)

A, B, C = "a" * 40, "b" * 40, "c" * 40
TAGS = CommitFacts(B, ("desired/app.yaml",))
COMPOSE = CommitFacts(C, ("desired/app.yaml", "compose/docker-compose.yml"))


def problem(commits: list[CommitFacts], policy: Policy, *, signed: frozenset[str] = frozenset(),
            ff: bool = True) -> str | None:  # fmt: skip
    return range_problem(
        fast_forward=ff, head=A, tip=commits[-1].sha, commits=commits, signed=signed, policy=policy
    )


def test_desired_only_changes_are_accepted() -> None:
    assert problem([TAGS], Policy("desired")) is None


def test_not_a_fast_forward_is_refused() -> None:
    why = problem([TAGS], Policy("desired", trust_repo=True), ff=False)
    assert why is not None and "not a fast-forward" in why and A[:12] in why


def test_a_change_outside_desired_is_refused_naming_commit_and_path() -> None:
    why = problem([TAGS, COMPOSE], Policy("desired"))
    assert why is not None
    assert C[:12] in why and "'compose/docker-compose.yml'" in why and "unsigned" in why


def test_signed_compose_change_or_trust_repo_is_accepted() -> None:
    assert problem([TAGS, COMPOSE], Policy("desired", signers=True), signed=frozenset({C})) is None
    assert problem([TAGS, COMPOSE], Policy("desired", trust_repo=True)) is None


def test_with_signers_the_tip_must_verify() -> None:
    why = problem([TAGS], Policy("desired", signers=True))
    assert why is not None and "not signed by an allowed signer" in why
    assert problem([TAGS], Policy("desired", signers=True), signed=frozenset({B})) is None
    # trust-repo does not waive the tip's signature
    assert problem([TAGS], Policy("desired", trust_repo=True, signers=True)) is not None


def test_needs_signature_names_only_commits_outside() -> None:
    assert needs_signature([TAGS, COMPOSE], Policy("desired")) == [C]
    assert needs_signature([TAGS, COMPOSE], Policy("desired", trust_repo=True)) == []


def test_outside_is_by_path_component() -> None:
    assert outside(["desired/a", "desired2/a", "desired", "x/desired/a"], "desired") == [
        "desired2/a",
        "desired",
        "x/desired/a",
    ]
    assert outside(["deploy/desired/a"], "deploy/desired") == []


@pytest.mark.parametrize(
    ("text", "want"),
    [("desired", "desired"), ("/deploy/desired/", "deploy/desired"), ("a/./b", "a/b")],
)
def test_git_path_normalised(text: str, want: str) -> None:
    assert git_path(text) == want


@pytest.mark.parametrize("text", ["", ".", "/", "..", "../x", "a/../..", "a\x00b"])
def test_git_path_refused(text: str) -> None:
    with pytest.raises(ValueError):
        git_path(text)


def test_redact_url_strips_credentials() -> None:
    assert redact_url("https://u:tok@git.example.com:8443/o/r.git?x=1") == (
        "https://git.example.com:8443/o/r.git"
    )
    assert redact_url("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert redact_url("ssh://git@[::1]:2222/r") == "ssh://[::1]:2222/r"


@pytest.mark.parametrize(
    "url", ["https://u:tok@h/r", "https://tok@h/r", "-uhttps://h", "https://h/r x", ""]
)
def test_url_with_credentials_or_odd_characters_is_refused(url: str) -> None:
    assert url_problem(url) is not None


@pytest.mark.parametrize("url", ["https://h/r.git", "ssh://git@h/r", "git@h:r", "file:///srv/r"])
def test_plain_urls_are_fine(url: str) -> None:
    assert url_problem(url) is None
