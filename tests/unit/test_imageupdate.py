"""Image-update automation's choice (core/imageupdate.py) and its compose policy
(`x-berth.update`, core/compose/update_opts.py), hostile values included."""

from __future__ import annotations

import time

import pytest

from controller.core.imageupdate import UpdatePolicy, choose, rank
from controller.core.options import BerthOptions
from controller.errors import ConfigError
from tests.unit.test_compose_loader import load

SEMVER = UpdatePolicy(semver=">=1.0.0 <2")
BUILD = UpdatePolicy(pattern="main-(?P<v>[0-9]+)")
ALPHA = UpdatePolicy(pattern="(?P<v>20[0-9]{6})-[a-f0-9]{7}", order="alphabetical")


@pytest.mark.parametrize(
    ("policy", "tags", "current", "kw", "want"),
    [
        (SEMVER, ["1.0.0", "1.2.0", "1.10.0", "2.0.0"], "1.0.0", {}, "1.10.0"),
        (SEMVER, ["1.0.0", "v1.3.0"], "1.0.0", {}, "v1.3.0"),  # a leading v is a version
        (SEMVER, ["1.0.0", "1.5.0-rc.1"], "1.0.0", {}, None),  # pre-releases: not in range
        (UpdatePolicy(semver=">=1.5.0-rc.0 <2"), ["1.5.0-rc.1"], "1.0.0", {}, "1.5.0-rc.1"),
        (SEMVER, ["1.0.0", "1.2.0"], "1.2.0", {}, None),  # already there
        (SEMVER, ["1.0.0", "1.2.0"], "1.5.0", {}, None),  # never downhill
        (SEMVER, ["1.2.0"], "hotfix", {}, "1.2.0"),  # current outside the policy: take one
        (SEMVER, ["1.2.0", "1.3.0"], "1.0.0", {"skip": frozenset({"1.3.0"})}, "1.2.0"),
        (SEMVER, ["1.3.0"], "1.2.0", {"skip": frozenset({"1.3.0"})}, None),
        (SEMVER, ["1.2.0", "1.3.0"], "1.0.0", {"allowed": r"1\.2\..*"}, "1.2.0"),
        (BUILD, ["main-9", "main-10", "main-x", "dev-99"], "main-9", {}, "main-10"),
        (BUILD, ["main-" + "9" * 40], "main-1", {}, None),  # not a build number
        (
            ALPHA,
            ["20261201-abcdef0", "2026120-x", "20261203-0123456"],
            "20261201-abcdef0",
            {},
            "20261203-0123456",
        ),
        # never a tag outside Docker's grammar, a digest, or an empty list
        (UpdatePolicy(pattern=".*"), ["-bad", "a" * 200, "sha256:" + "a" * 64], "x", {}, None),
        (SEMVER, [], "1.0.0", {}, None),
    ],
)
def test_choose(
    policy: UpdatePolicy, tags: list[str], current: str, kw: dict[str, object], want: str | None
) -> None:
    assert choose(tags, policy, current=current, **kw) == want  # type: ignore[arg-type]


def test_many_tags_are_linear() -> None:
    tags = [f"main-{i}" for i in range(20_000)]
    t0 = time.monotonic()
    assert choose(tags, BUILD, current="main-1") == "main-19999"
    assert rank("main-5", BUILD) == (5, "main-5")
    assert time.monotonic() - t0 < 30  # a bound on a hang, not a benchmark


def update(text: str) -> BerthOptions:
    return (
        load(f"services:\n  a:\n    image: i\n    x-berth:\n      update: {text}\n")
        .services["a"]
        .berth
    )


def test_policy_from_compose() -> None:
    assert update("{semver: '^1.2', interval: 1m}").update == UpdatePolicy(
        semver="^1.2", interval=60.0
    )
    got = update("{pattern: 'b-(?P<v>[0-9]+)', order: numerical, branch: berth/up}").update
    assert got == UpdatePolicy(pattern="b-(?P<v>[0-9]+)", branch="berth/up")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{}", "exactly one of semver"),
        ("{semver: '^1', pattern: 'x'}", "exactly one of semver"),
        ("{semver: 'garbage ~~'}", "invalid semver range"),
        ("{semver: '" + "1" * 300 + "'}", "longer than 200"),
        ("{pattern: '(a)\\1'}", "RE2"),
        ("{pattern: 'x', order: random}", "must be one of numerical, alphabetical"),
        ("{semver: '^1', order: numerical}", "order is for pattern"),
        ("{semver: '^1', interval: 1s}", "at least 10s"),
        ("{semver: '^1', branch: '../main'}", "plain git branch"),
        ("{semver: '^1', branch: '-f'}", "plain git branch"),
        ("{semver: '^1', branch: 'a b'}", "plain git branch"),
        ("{semver: '^1', branch: 'x.lock'}", "plain git branch"),
        # names git refuses (found only at push time, unlocated, every 30 s) or misreads:
        # refs/heads/HEAD makes every `git ... HEAD` in desired/ ambiguous
        ("{semver: '^1', branch: 'a//b'}", "plain git branch"),
        ("{semver: '^1', branch: 'a/.b'}", "plain git branch"),
        ("{semver: '^1', branch: 'a.lock/b'}", "plain git branch"),
        ("{semver: '^1', branch: 'HEAD'}", "plain git branch"),
        ("{semver: '^1', branch: 'FETCH_HEAD'}", "plain git branch"),
        ("{semver: '^1', branch: 'refs/heads/main'}", "plain git branch"),
        ("{semver: '^1', push: true}", "unknown key"),
        ("[1, 2]", "must be a mapping"),
    ],
)
def test_bad_policies_are_located_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        update(text)
    msg = str(exc.value)
    assert fragment in msg, msg
    assert ("x-berth.update" in msg and ":5:" in msg) or ":5" in msg, msg


def test_a_range_is_parsed_once_per_policy_not_once_per_tag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 200-character range over the registry client's MAX_TAGS (20,000) tags was parsed
    20,000 times per scan: seconds of CPU (holding the GIL) at every interval."""
    import semantic_version

    parsed: list[str] = []
    real = semantic_version.NpmSpec

    def counting(text: str) -> object:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(semantic_version, "NpmSpec", counting)
    spec = " || ".join(["^1.2.3-rc.1"] * 13)  # 191 characters, 13 clauses
    policy = UpdatePolicy(semver=spec)
    tags = [f"1.{i}.0" for i in range(2000)]
    assert choose(tags, policy, current="1.0.0") == "1.1999.0"
    assert choose(tags, policy, current="1.0.0") == "1.1999.0"
    assert len(parsed) <= 1, len(parsed)
