"""Peer sets of the dynamic switch and the upstreams file that records them (core/peers.py)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from controller.core.model import ProxySpec, ServiceSpec
from controller.core.peers import (
    DYNAMIC_MARK,
    SUN_PATH_MAX,
    Layout,
    PeerSet,
    Side,
    by_revision,
    container_directory,
    from_wire,
    is_dynamic,
    layout_for,
    parse_dynamic,
    render_dynamic,
    routes,
    structure,
    to_wire,
)
from controller.core.upstream import Backend, render_upstreams
from tests.unit.builders import spec

LUA = "-- berth balancer v1\nreturn {}\n"
LAYOUT = Layout("/etc/nginx/berth")

A1 = Backend("a1" * 32, "demo-api-aaaa1111-1", "172.18.0.5", 8000)
A2 = Backend("a2" * 32, "demo-api-aaaa1111-2", "172.18.0.6", 8000)
B1 = Backend("b1" * 32, "demo-api-bbbb2222-1", "172.18.0.7", 8001)
W1 = Backend("c1" * 32, "demo-web-cccc3333-1", "172.18.0.9", 80)


def short(b: Backend) -> Backend:
    """The backend as the file records it: the id cut to 12 characters."""
    return dataclasses.replace(b, container_id=b.container_id[:12])


def recorded(p: PeerSet) -> PeerSet:
    """The peer set as it reads back from the file or nginx."""
    return dataclasses.replace(
        p,
        sides=tuple(
            dataclasses.replace(s, backends=tuple(short(b) for b in s.backends)) for s in p.sides
        ),
    )


CANARY = PeerSet(
    gen=7,
    sides=(Side("aaaa1111", 90.0, (A1, A2)), Side("bbbb2222", 10.0, (B1,))),
    sticky=True,
)
WEB = PeerSet(gen=3, sides=(Side("cccc3333", 100.0, (W1,)),))
PEERS = {"api_up": CANARY, "web_up": WEB}


def state_json(text: str) -> tuple[str, str]:
    """(level, JSON) of the `berth.init([=[...]=], "socket")` line, read with Lua's own
    rule: the long string ends at the first closing bracket of its level."""
    m = re.search(r"berth\.init\(\[(=+)\[", text)
    assert m is not None, text
    level = m.group(1)
    start = m.end()
    end = text.index(f"]{level}]", start)
    assert text[end : end + len(level) + 4] == f"]{level}], "
    return level, text[start:end]


# -- render_dynamic / parse_dynamic --------------------------------------------------------


def test_render_then_parse_round_trips_structure_and_every_peer_set() -> None:
    text = render_dynamic(PEERS, LAYOUT, LUA)
    parsed = parse_dynamic(text)
    assert parsed is not None
    struct, sets = parsed
    assert struct == structure(["api_up", "web_up"], LAYOUT, LUA)
    assert sets == {"api_up": recorded(CANARY), "web_up": recorded(WEB)}
    api = sets["api_up"]
    assert api.gen == 7 and api.sticky is True
    assert [(s.revision, s.weight) for s in api.sides] == [("aaaa1111", 90.0), ("bbbb2222", 10.0)]
    first = api.sides[0].backends[0]
    assert (first.address, first.port) == ("172.18.0.5", 8000)
    assert first.container_id == A1.container_id[:12] and len(first.container_id) == 12
    assert first.container_name == "demo-api-aaaa1111-1"
    assert api.sides[1].backends == (short(B1),)
    assert sets["web_up"].sticky is False and sets["web_up"].gen == 3


def test_render_is_a_dynamic_file_nginx_can_load() -> None:
    text = render_dynamic(PEERS, Layout("/etc/nginx/berth", keepalive=8), LUA)
    assert is_dynamic(text) and DYNAMIC_MARK in text
    assert 'loadfile("/etc/nginx/berth/berth_balancer.lua")' in text
    assert "listen unix:/etc/nginx/berth/control.sock;" in text
    for name in ("api_up", "web_up"):
        block = text.split(f"upstream {name} {{\n", 1)[1].split("\n}\n", 1)[0]
        assert f'berth.balance("{name}")' in block
        assert "keepalive 8;" in block
    # equal input, equal bytes, whatever the order of the mapping
    assert text == render_dynamic(
        {"web_up": WEB, "api_up": CANARY}, Layout("/etc/nginx/berth", keepalive=8), LUA
    )


def test_parse_dynamic_is_none_for_other_files() -> None:
    assert parse_dynamic(render_upstreams({"api_up": [A1]})) is None
    assert parse_dynamic("") is None
    broken = render_dynamic(PEERS, LAYOUT, LUA).replace('"upstreams"', '"ups"')
    assert parse_dynamic(broken) is None
    garbled = render_dynamic(PEERS, LAYOUT, LUA).replace('{"structure"', '{"structure" ?')
    assert parse_dynamic(garbled) is None


@pytest.mark.parametrize(
    "record",
    [
        {"structure": "x", "upstreams": []},
        {"structure": "x", "upstreams": {"api_up": {"sides": [1]}}},
        {"structure": "x", "upstreams": {"api_up": {"sides": ["side"]}}},
    ],
)
def test_parse_dynamic_is_none_for_a_corrupt_record(record: dict[str, Any]) -> None:
    text = f"{DYNAMIC_MARK}\nberth.init([=[{json.dumps(record)}]=])\n"
    assert parse_dynamic(text) is None


# -- structure -----------------------------------------------------------------------------


def test_structure_ignores_peers() -> None:
    other = {
        "api_up": PeerSet(99, (Side("dddd4444", 100.0, (B1,)),), sticky=False),
        "web_up": PeerSet(1, ()),
    }
    a = parse_dynamic(render_dynamic(PEERS, LAYOUT, LUA))
    b = parse_dynamic(render_dynamic(other, LAYOUT, LUA))
    assert a is not None and b is not None
    assert a[0] == b[0]
    assert a[1] != b[1]


def test_structure_follows_names_layout_and_lua() -> None:
    base = structure(["api_up", "web_up"], LAYOUT, LUA)
    assert base == structure(["web_up", "api_up"], LAYOUT, LUA)  # a set, not a sequence
    assert base == structure(["api_up", "web_up"], Layout("/etc/nginx/berth"), LUA)
    changed = [
        structure(["api_up"], LAYOUT, LUA),
        structure(["api_up", "web_up", "admin_up"], LAYOUT, LUA),
        structure(["api_up", "web2_up"], LAYOUT, LUA),
        structure(["api_up", "web_up"], Layout("/srv/berth"), LUA),
        structure(["api_up", "web_up"], Layout("/etc/nginx/berth", keepalive=16), LUA),
        structure(["api_up", "web_up"], LAYOUT, LUA + "-- edited\n"),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def test_render_records_the_structure_of_its_names() -> None:
    text = render_dynamic(PEERS, LAYOUT, LUA)
    parsed = parse_dynamic(text)
    assert parsed is not None
    assert parsed[0] == structure(PEERS, LAYOUT, LUA)
    assert parsed[0] != structure(["api_up"], LAYOUT, LUA)


# -- the Lua long-string level -------------------------------------------------------------


@pytest.mark.parametrize(
    ("revision", "level"),
    [
        ("plain", "="),
        ("a]=]b", "=="),
        ("a]=]b]==]c", "==="),
        ("a]==]b", "="),  # only the levels present are skipped
        ("x]]y", "="),
    ],
)
def test_long_string_level_never_closes_inside_the_json(revision: str, level: str) -> None:
    p = PeerSet(1, (Side(revision, 100.0, (A1,)),))
    text = render_dynamic({"api_up": p}, LAYOUT, LUA)
    got_level, body = state_json(text)
    assert got_level == level
    assert f"]{level}]" not in body
    record = json.loads(body)  # the long string holds the whole JSON, nothing cut
    assert record["upstreams"]["api_up"]["sides"][0]["rev"] == revision
    parsed = parse_dynamic(text)
    assert parsed is not None
    assert parsed[1] == {"api_up": recorded(p)}


# -- routes --------------------------------------------------------------------------------


def test_routes_reads_a_reload_file() -> None:
    text = render_upstreams({"api_up": [A2, A1], "web_up": [W1], "empty_up": []})
    assert routes(text) == {
        "api_up": [short(A1), short(A2)],
        "web_up": [short(W1)],
        "empty_up": [],
    }


def test_routes_reads_a_dynamic_file() -> None:
    assert routes(render_dynamic(PEERS, LAYOUT, LUA)) == {
        "api_up": [short(A1), short(A2), short(B1)],
        "web_up": [short(W1)],
    }


def test_routes_of_a_dynamic_file_skip_a_side_of_weight_zero() -> None:
    switched = PeerSet(4, (Side("aaaa1111", 0.0, (A1, A2)), Side("bbbb2222", 100.0, (B1,))))
    lone = PeerSet(5, (Side("cccc3333", 0.0, (W1,)),))
    text = render_dynamic({"api_up": switched, "web_up": lone}, LAYOUT, LUA)
    assert routes(text) == {"api_up": [short(B1)], "web_up": [short(W1)]}
    assert switched.backends() == [B1]
    assert lone.backends() == [W1]  # a single side is listed even at weight 0
    # addresses still name every peer, routed or not
    assert switched.addresses() == {"172.18.0.5:8000", "172.18.0.6:8000", "172.18.0.7:8001"}


# -- by_revision ---------------------------------------------------------------------------


def test_by_revision_groups_and_weighs_by_peer_count() -> None:
    pairs = [(B1, "bbbb2222"), (A2, "aaaa1111"), (W1, "aaaa1111")]
    p = by_revision(pairs, gen=12, sticky=True)
    assert p.gen == 12 and p.sticky is True
    assert [s.revision for s in p.sides] == ["aaaa1111", "bbbb2222"]
    assert [s.backends for s in p.sides] == [(A2, W1), (B1,)]
    assert p.sides[0].weight == pytest.approx(200 / 3, abs=0.001)
    assert p.sides[1].weight == pytest.approx(100 / 3, abs=0.001)
    assert sum(s.weight for s in p.sides) == pytest.approx(100.0, abs=0.01)


def test_by_revision_is_deterministic() -> None:
    pairs = [(A1, "r2"), (B1, "r1"), (A2, "r2"), (W1, "r3")]
    p = by_revision(pairs, gen=1)
    assert p == by_revision(list(reversed(pairs)), gen=1)
    assert p == by_revision([pairs[2], pairs[3], pairs[0], pairs[1]], gen=1)
    assert [s.revision for s in p.sides] == ["r1", "r2", "r3"]
    assert p.sides[1].backends == (A1, A2)
    assert [s.weight for s in p.sides] == [25.0, 50.0, 25.0]
    assert p.sticky is False


def test_by_revision_of_one_revision_and_of_none() -> None:
    one = by_revision([(A1, "r"), (A2, "r")], gen=2)
    assert one.sides == (Side("r", 100.0, (A1, A2)),)
    assert by_revision([], gen=3) == PeerSet(3, ())


# -- to_wire / from_wire -------------------------------------------------------------------


def test_wire_round_trip() -> None:
    wire = to_wire(CANARY)
    assert wire["gen"] == 7 and wire["sticky"] is True
    assert wire["sides"][0]["peers"][0] == {
        "addr": "172.18.0.5:8000",
        "id": A1.container_id[:12],
        "name": "demo-api-aaaa1111-1",
    }
    assert from_wire(wire) == recorded(CANARY)
    assert from_wire(json.loads(json.dumps(wire))) == recorded(CANARY)
    assert from_wire(to_wire(WEB)) == recorded(WEB)
    empty = PeerSet(0, ())
    assert from_wire(to_wire(empty)) == empty


@pytest.mark.parametrize("junk", [{}, [], {"sides": "x"}, None, "peers", {"sides": None}])
def test_from_wire_refuses_junk(junk: Any) -> None:
    with pytest.raises(ValueError):
        from_wire(junk)


@pytest.mark.parametrize(
    "junk",
    [
        {"sides": [{"rev": "r", "weight": "heavy"}]},
        {"sides": [{"rev": "r", "weight": 1, "peers": [{"addr": "10.0.0.1"}]}]},
        {"sides": [{"rev": "r", "weight": 1, "peers": [{"addr": "10.0.0.1:"}]}]},
        {"sides": [{"weight": 1}]},
        {"sides": [{"rev": "r", "weight": 1, "peers": [1]}]},
        {"sides": [], "gen": None},
    ],
)
def test_from_wire_fails_with_an_error_its_callers_catch(junk: Any) -> None:
    # callers (parse_dynamic, dynamic.apply) catch ValueError, KeyError and TypeError
    with pytest.raises((ValueError, KeyError, TypeError)):
        from_wire(junk)


@pytest.mark.parametrize("junk", [{"sides": [1]}, {"sides": ["side"]}, {"sides": [[]]}])
def test_from_wire_side_not_an_object(junk: Any) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        from_wire(junk)


# -- same_routes ---------------------------------------------------------------------------


def test_same_routes_ignores_gen_and_order() -> None:
    assert CANARY.same_routes(dataclasses.replace(CANARY, gen=CANARY.gen + 1))
    assert CANARY.same_routes(recorded(CANARY))  # ids compared on 12 characters
    swapped = dataclasses.replace(
        CANARY,
        sides=(Side("bbbb2222", 10.0, (B1,)), Side("aaaa1111", 90.0, (A2, A1))),
    )
    assert CANARY.same_routes(swapped)
    renamed = dataclasses.replace(
        CANARY,
        sides=(
            Side("aaaa1111", 90.0, (dataclasses.replace(A1, container_name="x"), A2)),
            CANARY.sides[1],
        ),
    )
    assert CANARY.same_routes(renamed)  # the name is not part of the route


def _with_first(side: Side | None = None, backend: Backend | None = None) -> PeerSet:
    first = side or CANARY.sides[0]
    if backend is not None:
        first = dataclasses.replace(first, backends=(backend, *first.backends[1:]))
    return dataclasses.replace(CANARY, sides=(first, CANARY.sides[1]))


@pytest.mark.parametrize(
    "changed",
    [
        _with_first(backend=dataclasses.replace(A1, address="172.18.0.50")),
        _with_first(backend=dataclasses.replace(A1, port=8080)),
        _with_first(backend=dataclasses.replace(A1, container_id="ff" * 32)),
        _with_first(side=dataclasses.replace(CANARY.sides[0], weight=80.0)),
        _with_first(side=dataclasses.replace(CANARY.sides[0], revision="eeee5555")),
        _with_first(side=dataclasses.replace(CANARY.sides[0], backends=(A1,))),
        dataclasses.replace(CANARY, sticky=False),
        dataclasses.replace(CANARY, sides=CANARY.sides[:1]),
    ],
    ids=["address", "port", "id", "weight", "revision", "peer-gone", "sticky", "side-gone"],
)
def test_same_routes_notices_a_change(changed: PeerSet) -> None:
    assert not CANARY.same_routes(changed)
    assert not changed.same_routes(CANARY)


# -- container_directory -------------------------------------------------------------------


def bind(source: str, target: str, *, ro: bool = False) -> dict[str, Any]:
    return {"Type": "bind", "Source": source, "Target": target, "ReadOnly": ro}


def test_container_directory_exact_bind() -> None:
    mounts = [bind("/srv/up", "/etc/nginx/berth")]
    assert container_directory(mounts, "/srv/up") == ("/etc/nginx/berth", True)
    assert container_directory(mounts, "/srv/up/") == ("/etc/nginx/berth", True)
    assert container_directory([bind("/srv/up/", "/etc/nginx/berth/")], "/srv/up") == (
        "/etc/nginx/berth",
        True,
    )


def test_container_directory_through_a_parent_bind() -> None:
    mounts = [bind("/srv", "/data")]
    assert container_directory(mounts, "/srv/stack/nginx") == ("/data/stack/nginx", True)
    assert container_directory([bind("/", "/host")], "/srv/up") == ("/host/srv/up", True)
    assert container_directory([bind("/srv", "/")], "/srv/up") == ("/up", True)


@pytest.mark.parametrize("reverse", [False, True])
def test_container_directory_longest_prefix_wins(reverse: bool) -> None:
    mounts = [bind("/srv", "/outer", ro=True), bind("/srv/stack", "/inner")]
    if reverse:
        mounts.reverse()
    assert container_directory(mounts, "/srv/stack/nginx") == ("/inner/nginx", True)
    assert container_directory(mounts, "/srv/other") == ("/outer/other", False)


def test_container_directory_reports_read_only() -> None:
    assert container_directory([bind("/srv/up", "/up", ro=True)], "/srv/up") == ("/up", False)
    no_flag = [{"Type": "bind", "Source": "/srv/up", "Target": "/up"}]
    assert container_directory(no_flag, "/srv/up") == ("/up", True)


def test_container_directory_ignores_volumes_and_siblings() -> None:
    volume = {"Type": "volume", "Source": "/srv/up", "Target": "/up", "ReadOnly": False}
    assert container_directory([volume], "/srv/up") is None
    assert container_directory([volume, bind("/srv", "/s")], "/srv/up") == ("/s/up", True)
    assert container_directory([{"Source": "/srv/up", "Target": "/up"}], "/srv/up") is None
    # a common string prefix is not a parent directory
    assert container_directory([bind("/srv/up", "/up")], "/srv/upstreams") is None
    assert container_directory([bind("/srv/upstreams", "/up")], "/srv/up") is None


def test_container_directory_without_a_match() -> None:
    assert container_directory([], "/srv/up") is None
    assert container_directory([bind("/opt", "/opt")], "/srv/up") is None
    assert container_directory([bind("/srv/up/sub", "/sub")], "/srv/up") is None  # a child


# -- layout_for ----------------------------------------------------------------------------

UPSTREAMS = "/srv/stack/nginx/upstreams.conf"


def host_proxy(upstreams_file: str = UPSTREAMS) -> ProxySpec:
    return ProxySpec(
        service=None,
        upstreams_file=upstreams_file,
        test_command=("nginx", "-t"),
        reload_command=("nginx", "-s", "reload"),
    )


def nginx(mounts: list[dict[str, Any]], *, replicas: int = 1) -> ServiceSpec:
    return dataclasses.replace(
        spec("web", replicas=replicas), create={"HostConfig": {"Mounts": mounts}}
    )


PROXY = ProxySpec(service="web", upstreams_file=UPSTREAMS)


def test_layout_for_host_nginx() -> None:
    layout, why = layout_for(host_proxy(), {})
    assert (layout, why) == (Layout("/srv/stack/nginx"), "")
    assert layout is not None
    assert layout.socket == "/srv/stack/nginx/control.sock"
    assert layout.lua == "/srv/stack/nginx/berth_balancer.lua"
    assert layout.keepalive == 32


def test_layout_for_container_nginx_maps_through_its_mounts() -> None:
    services = {"web": nginx([bind("/srv/stack/nginx", "/etc/nginx/berth")]), "api": spec("api")}
    assert layout_for(PROXY, services) == (Layout("/etc/nginx/berth"), "")
    parent = {"web": nginx([bind("/srv/stack", "/stack", ro=True), bind("/srv", "/srv-rw")])}
    # the longest mount decides, and it is read-only
    layout, why = layout_for(PROXY, parent)
    assert layout is None and "read-only" in why
    parent_rw = {"web": nginx([bind("/srv", "/mnt/srv")])}
    assert layout_for(PROXY, parent_rw) == (Layout("/mnt/srv/stack/nginx"), "")


@pytest.mark.parametrize(
    ("services", "fragments"),
    [
        ({"web": nginx([])}, ["'web'", "does not mount /srv/stack/nginx"]),
        ({"web": nginx([bind("/srv/other", "/x")])}, ["does not mount /srv/stack/nginx"]),
        ({"web": nginx([bind("/srv/stack/ngin", "/x")])}, ["does not mount"]),
        ({"api": spec("api")}, ["'web'", "does not mount"]),
        (
            {"web": nginx([bind("/srv/stack/nginx", "/etc/nginx/berth", ro=True)])},
            ["'web'", "read-only", "control socket"],
        ),
        (
            {"web": nginx([bind("/srv/stack/nginx", "/etc/nginx/berth")], replicas=2)},
            ["'web'", "2 replicas"],
        ),
        (
            {"web": nginx([bind("/srv/stack/nginx", "/" + "d" * 120)])},
            ["control socket path", f"longer than {SUN_PATH_MAX} bytes"],
        ),
    ],
    ids=["no-mounts", "other-dir", "sibling", "no-service", "read-only", "replicas", "long"],
)
def test_layout_for_refuses(services: dict[str, ServiceSpec], fragments: list[str]) -> None:
    layout, why = layout_for(PROXY, services)
    assert layout is None
    for fragment in fragments:
        assert fragment in why


def test_layout_for_socket_path_limit_is_exact() -> None:
    suffix = len("/control.sock")
    fits = "/" + "d" * (SUN_PATH_MAX - suffix - 1)
    layout, why = layout_for(host_proxy(fits + "/up.conf"), {})
    assert layout is not None and why == ""
    assert len(layout.socket.encode()) == SUN_PATH_MAX
    layout, why = layout_for(host_proxy(fits + "d/up.conf"), {})
    assert layout is None and f"longer than {SUN_PATH_MAX} bytes" in why
    # bytes, not characters
    wide = "/" + "é" * ((SUN_PATH_MAX - suffix - 1) // 2 + 1)
    assert len(wide) + suffix <= SUN_PATH_MAX
    layout, why = layout_for(host_proxy(wide + "/up.conf"), {})
    assert layout is None and "longer than" in why
