"""Digest pinning (core/digests.py) and the resolver that asks the registry for it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.core.digests import Lookup, pin, reference_to_resolve, running_digest
from controller.core.model import (
    BerthOptions,
    BuildSpec,
    ContainerState,
    ObservedContainer,
    ServiceSpec,
    Target,
)
from controller.shell.rollout.digests import DigestResolver
from tests.fakes import FakeRegistry, FakeRuntime

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
REF = "reg.example:5000/team/api:1.4"


def target(*, track: str = "pinned", tag: str = "1.4", build: bool = False) -> Target:
    spec = ServiceSpec(
        project="p",
        name="api",
        image="reg.example:5000/team/api",
        replicas=1,
        create={},
        networks=(),
        berth=BerthOptions(track=track),
        build=BuildSpec(context="/x") if build else None,
    )
    image = f"reg.example:5000/team/api:{tag}" if not tag.startswith("sha256:") else f"x@{tag}"
    return Target("p", "api", image, tag, 1, spec)


def container(digest: str | None, *, tag: str = "1.4", created: float = 1.0) -> ObservedContainer:
    return ObservedContainer(
        id=f"c{created}",
        name="p-api-1",
        project="p",
        service="api",
        number=1,
        revision="r",
        tag=tag,
        image="img",
        state=ContainerState.RUNNING,
        health=None,
        created=created,
        digest=digest,
    )


@pytest.mark.parametrize(
    ("track", "running", "lookup", "digest", "drift"),
    [
        # first rollout of a tag: the registry's answer is pinned
        ("pinned", None, Lookup(D1), D1, None),
        ("digest", None, Lookup(D1), D1, None),
        # the tag did not move
        ("pinned", D1, Lookup(D1), D1, None),
        # the tag moved: pinned stays and reports, digest follows
        ("pinned", D1, Lookup(D2), D1, D2),
        ("digest", D1, Lookup(D2), D2, None),
        # the registry cannot say: what runs stays; nothing runs -> by tag
        ("pinned", D1, Lookup(error="down"), D1, None),
        ("digest", D1, Lookup(error="down"), D1, None),
        ("pinned", None, Lookup(error="down"), None, None),
        # built or imported here: by tag, nothing to report
        ("pinned", None, Lookup(local_only=True), None, None),
        # track: tag never pins
        ("tag", D1, Lookup(D2), None, None),
    ],
)
def test_pin_table(
    track: str, running: str | None, lookup: Lookup, digest: str | None, drift: str | None
) -> None:
    p = pin(target(track=track), running=running, lookup=lookup)
    assert p.target.digest == digest
    assert p.drift == drift
    if digest:
        assert p.target.image == f"{REF}@{digest}"
        assert p.target.revision != target(track=track).revision  # the digest is hashed
    else:
        assert p.target.image == REF


def test_pinned_by_tag_note_says_why() -> None:
    p = pin(target(), running=None, lookup=Lookup(error="registry down"))
    assert p.note == "registry down"
    assert pin(target(), running=None, lookup=Lookup(local_only=True)).note is None


def test_nothing_to_resolve_for_digest_in_desired_build_or_track_tag() -> None:
    assert reference_to_resolve(target()) == REF
    assert reference_to_resolve(target(tag=D1)) is None
    assert reference_to_resolve(replace(target(), image=f"{REF}@{D1}")) is None
    assert reference_to_resolve(target(track="tag")) is None
    assert reference_to_resolve(target(build=True)) is None


def test_running_digest_is_the_newest_running_of_the_same_tag() -> None:
    t = target()
    cs = [container(D1, created=1), container(D2, created=5), container(D3, tag="1.3", created=9)]
    assert running_digest(t, cs) == D2
    assert running_digest(t, [container(None)]) is None
    stopped = replace(container(D1), state=ContainerState.EXITED)
    assert running_digest(t, [stopped]) is None


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_resolver_caches_answers_and_errors_for_their_ttls() -> None:
    reg, rt, clock = FakeRegistry({REF: D1}), FakeRuntime(), Clock()
    r = DigestResolver(reg, rt, ttl=60, ttl_error=5, now=clock)
    assert r.lookup(REF).digest == D1
    assert r.lookup(REF).digest == D1
    assert reg.calls == [REF]  # cached
    reg.digests[REF] = D2
    clock.t = 61
    assert r.lookup(REF).digest == D2  # the tag moved: seen after the ttl
    reg.down = True
    r.forget(REF)
    assert r.lookup(REF).error is not None
    reg.down = False
    clock.t = 63
    assert r.lookup(REF).error is not None  # errors cached for ttl_error
    clock.t = 67
    assert r.lookup(REF).digest == D2


def test_resolver_does_not_ask_for_an_image_built_here() -> None:
    reg, rt = FakeRegistry({REF: D1}), FakeRuntime()
    rt.images.add(REF)  # present, no registry digest: built or imported
    assert DigestResolver(reg, rt).lookup(REF) == Lookup(local_only=True)
    assert reg.calls == []


def test_resolver_falls_back_to_the_local_copy_of_the_same_repository() -> None:
    reg, rt = FakeRegistry({REF: D1}, down=True), FakeRuntime()
    rt.images.add(REF)
    rt.repo_digests[REF] = (f"other/repo@{D3}", f"reg.example:5000/team/api@{D2}")
    found = DigestResolver(reg, rt).lookup(REF)
    assert found.digest == D2
    assert found.error and "unreachable" in found.error


def test_a_quick_no_is_asked_again_but_an_unreachable_registry_is_remembered() -> None:
    reg, rt, clock = FakeRegistry({}), FakeRuntime(), Clock()
    r = DigestResolver(reg, rt, ttl=60, ttl_error=30, now=clock)
    assert r.lookup(REF).error is not None  # not found (yet): CI may push it any moment
    reg.digests[REF] = D1
    assert r.lookup(REF).digest == D1
    reg.down, other = True, "reg.example:5000/team/api:2.0"
    r.lookup(other)
    r.lookup(other)
    assert reg.calls.count(other) == 1  # one timeout per period, not one per pass


def test_related_follows_depends_on_and_peers_transitively() -> None:
    from controller.core.model import DependsOn
    from controller.shell.rollout.digests import related

    def t(name: str, deps: tuple[str, ...] = (), peers: tuple[str, ...] = ()) -> Target:
        base = target()
        spec = replace(base.spec, name=name, depends_on=tuple(DependsOn(d) for d in deps),
                       peers=peers)  # fmt: skip
        return replace(base, service=name, spec=spec)

    ts = [t("api", deps=("db",)), t("db", peers=("vpn",)), t("vpn"), t("web", deps=("api",))]
    assert related(ts, "api") == {"api", "db", "vpn"}
    assert related(ts, "vpn") == {"vpn"}
    assert related(ts, "gone") == set()
