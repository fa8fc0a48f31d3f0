from __future__ import annotations

from controller.core.plan import ActionKind
from controller.core.upstream import (
    Backend,
    Candidate,
    healed_routes,
    parse_upstreams,
    render_upstreams,
    steady_revisions,
)

A = Backend("a" * 64, "demo-api-1111aaaa-1", "172.18.0.5", 8000)
B = Backend("b" * 64, "demo-api-1111aaaa-2", "172.18.0.6", 8000)


def test_render_is_deterministic_and_uses_ips() -> None:
    text = render_upstreams({"api_backend": [B, A], "web": []})
    assert text == render_upstreams({"web": [], "api_backend": [A, B]})
    assert "server 172.18.0.5:8000;" in text and "least_conn;" in text
    assert "keepalive 32;" in text
    # an upstream without backends still parses in nginx (a down placeholder)
    assert "server 127.0.0.1:9 down;" in text.split("upstream web")[1]


def test_round_trip() -> None:
    text = render_upstreams({"api_backend": [A, B], "web": []})
    parsed = parse_upstreams(text)
    assert [b.container_name for b in parsed["api_backend"]] == [A.container_name, B.container_name]
    assert parsed["api_backend"][0].container_id == A.container_id[:12]
    assert parsed["web"] == []


def test_parse_ignores_foreign_lines() -> None:
    assert parse_upstreams("upstream x {\n server 10.0.0.1:80;\n}\n") == {"x": []}


# -- healed_routes: a steady service's upstream follows its containers ------------------

RA = Backend("aaaaaaaaaaaa", "p-api-1", "10.0.0.2", 8000)
RB = Backend("bbbbbbbbbbbb", "p-api-2", "10.0.0.3", 8000)


def cand(b: Backend, address: str | None = None, *, serving: bool = True) -> Candidate:
    return Candidate(b.container_id, b.container_name, address or b.address, serving)


def never(_: Candidate) -> bool:
    raise AssertionError("a container routed at the same address is not probed")


def test_heal_nothing_to_do_when_routes_match() -> None:
    assert healed_routes([RA, RB], [cand(RA), cand(RB)], never) is None


def test_heal_follows_a_new_address_once_ready() -> None:
    moved = cand(RB, "10.0.0.9")
    keep, reasons = healed_routes([RA, RB], [cand(RA), moved], lambda c: True) or ([], [])
    assert [c.address for c in keep] == ["10.0.0.2", "10.0.0.9"]
    assert reasons == ["p-api-2: address 10.0.0.3 -> 10.0.0.9"]


def test_heal_drops_a_new_address_that_is_not_ready() -> None:
    moved = cand(RB, "10.0.0.9")
    keep, reasons = healed_routes([RA, RB], [cand(RA), moved], lambda c: False) or ([], [])
    assert [c.container_id for c in keep] == [RA.container_id]
    assert reasons == ["p-api-2: new address 10.0.0.9 not ready yet"]


def test_heal_drops_stopped_gone_and_unhealthy_containers() -> None:
    keep, reasons = healed_routes([RA, RB], [cand(RA), cand(RB, serving=False)], never) or ([], [])
    assert [c.container_id for c in keep] == [RA.container_id]
    assert reasons == ["p-api-2: no longer serving"]
    keep, reasons = healed_routes([RA, RB], [cand(RA)], never) or ([], [])
    assert reasons == ["p-api-2: no longer serving"]


def test_heal_routes_a_serving_container_again_only_after_its_probe() -> None:
    probed: list[str] = []

    def ready(c: Candidate) -> bool:
        probed.append(c.container_name)
        return True

    keep, reasons = healed_routes([RA], [cand(RA), cand(RB)], ready) or ([], [])
    assert probed == ["p-api-2"]
    assert len(keep) == 2 and reasons == ["p-api-2: serving again"]
    assert healed_routes([RA], [cand(RA), cand(RB)], lambda c: False) is None


def test_heal_never_empties_an_upstream() -> None:
    assert healed_routes([RA, RB], [cand(RA, serving=False)], never) is None
    assert healed_routes([RA], [cand(RA, "10.0.0.7")], lambda c: False) is None
    assert healed_routes([], [], never) is None


def test_heal_ignores_containers_without_an_address() -> None:
    stray = Candidate("cccccccccccc", "p-api-3", None, True)
    assert healed_routes([RA], [cand(RA), stray], never) is None


# -- probe_routed: the Swarm backend, whose manager lags behind a lost node --------------


def test_probe_routed_drops_a_routed_container_whose_probe_fails() -> None:
    keep, reasons = healed_routes(
        [RA, RB], [cand(RA), cand(RB)], lambda c: c.address != RB.address, probe_routed=True
    ) or ([], [])
    assert [c.container_id for c in keep] == [RA.container_id]
    assert reasons == ["p-api-2: its probe failed"]


def test_probe_routed_never_empties_the_upstream() -> None:
    assert healed_routes([RA, RB], [cand(RA), cand(RB)], lambda c: False, probe_routed=True) is None


def test_probe_routed_routes_a_dropped_container_again_once_its_probe_passes() -> None:
    keep, reasons = healed_routes(
        [RA], [cand(RA), cand(RB)], lambda c: True, probe_routed=True
    ) or (
        [],
        [],
    )
    assert [c.container_id for c in keep] == [RA.container_id, RB.container_id]
    assert reasons == ["p-api-2: serving again"]


def test_probe_routed_changes_nothing_while_every_probe_passes() -> None:
    assert healed_routes([RA, RB], [cand(RA), cand(RB)], lambda c: True, probe_routed=True) is None


# -- which revisions a steady service's routes follow ------------------------------------


def test_steady_routes_follow_the_desired_revision() -> None:
    assert steady_revisions(ActionKind.NOTHING, "v2", {"v1"}) == {"v2"}


def test_a_quarantined_desired_revision_leaves_the_routes_on_what_serves() -> None:
    # v2 failed and is quarantined, v1 kept serving: v1's containers are still healed
    assert steady_revisions(ActionKind.QUARANTINED, "v2", {"v1"}) == {"v1"}
    # a switch-back that failed left v2 routed: that is what serves, so it is followed
    assert steady_revisions(ActionKind.QUARANTINED, "v2", {"v2"}) == {"v2"}
    assert steady_revisions(ActionKind.QUARANTINED, "v2", set()) == frozenset()
