"""A compose network's `ipam:` block: passed on when valid, located errors when not."""

from __future__ import annotations

import pytest

from controller.adapters._docker_networks import engine_pools, fixable
from controller.core.model import IpamPool
from controller.errors import ConfigError
from tests.unit.test_compose_translate import FILE, load

SERVICE = "services:\n  s:\n    image: busybox\n    networks: [n]\nnetworks:\n  n:\n"


def test_subnet_gateway_and_range_are_kept() -> None:
    stack = load(
        SERVICE + "    ipam:\n      driver: default\n      config:\n"
        "        - subnet: 172.28.0.0/16\n          ip_range: 172.28.5.0/24\n"
        "          gateway: 172.28.0.1\n"
    )
    net = stack.networks["n"]
    assert net.ipam_driver == "default"
    assert net.ipam == (IpamPool("172.28.0.0/16", "172.28.5.0/24", "172.28.0.1"),)


def test_no_ipam_means_the_engine_chooses() -> None:
    assert load(SERVICE + "    internal: true\n").networks["n"].ipam == ()


@pytest.mark.parametrize(
    ("ipam", "line", "field", "words"),
    [
        (
            "config:\n        - subnet: 172.28.0.1/16\n",
            9,
            "networks.n.ipam.config[0].subnet",
            "host bits",
        ),
        ("config:\n        - subnet: banana\n", 9, "networks.n.ipam.config[0].subnet", "CIDR"),
        (
            "config:\n        - subnet: 10.1.0.0/24\n          gateway: 10.2.0.1\n",
            10,
            "networks.n.ipam.config[0].gateway",
            "not inside",
        ),
        (
            "config:\n        - subnet: 10.1.0.0/24\n          ip_range: 10.1.0.0/16\n",
            10,
            "networks.n.ipam.config[0].ip_range",
            "not inside",
        ),
        (
            "config:\n        - subnet: 10.1.0.0/24\n          gateway: nope\n",
            10,
            "networks.n.ipam.config[0].gateway",
            "not an IP address",
        ),
        (
            "config:\n        - gateway: 10.1.0.1\n",
            9,
            "networks.n.ipam.config[0]",
            "needs a subnet",
        ),
        (
            "config:\n        - subnet: 10.1.0.0/24\n          aux_addresses: {a: 10.1.0.9}\n",
            10,
            "networks.n.ipam.config[0].aux_addresses",
            "unknown key",
        ),
        ("config: 10.1.0.0/24\n", 8, "networks.n.ipam.config", "must be a list"),
        ("options: {a: b}\n", 8, "networks.n.ipam.options", "unknown key"),
    ],
)
def test_bad_ipam_is_located(ipam: str, line: int, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(SERVICE + "    ipam:\n      " + ipam)
    hits = [p for p in info.value.problems if (p.file, p.line, p.field) == (FILE, line, field)]
    assert hits, info.value.problems
    assert words in hits[0].message


def test_engine_pools_reads_ipv4_pools_of_an_inspected_network() -> None:
    doc = {
        "IPAM": {
            "Config": [
                {"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"},
                {"Subnet": "fd00::/64", "Gateway": "fd00::1"},
                {"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.128/25"},
            ]
        }
    }
    assert engine_pools(doc) == (
        IpamPool("172.30.0.0/16", None, "172.30.0.1"),
        IpamPool("10.9.0.0/24", "10.9.0.128/25", None),
    )
    assert engine_pools({"IPAM": {"Config": None}}) == ()
    assert engine_pools({}) == ()


def test_an_ipv6_pool_needs_enable_ipv6() -> None:
    with pytest.raises(ConfigError) as info:
        load(SERVICE + "    ipam:\n      config:\n        - subnet: fd00:1::/64\n")
    [problem] = info.value.problems
    assert (problem.line, problem.field) == (9, "networks.n.ipam.config[0].subnet")
    assert "needs enable_ipv6: true" in problem.message


def test_enable_ipv6_keeps_both_pools() -> None:
    """wg-easy's network: an IPv4 and an IPv6 subnet, passed on to the engine."""
    net = load(
        SERVICE + "    enable_ipv6: true\n    ipam:\n      driver: default\n      config:\n"
        "        - subnet: 10.42.42.0/24\n        - subnet: fdcc:ad94:bacf:61a3::/64\n"
    ).networks["n"]
    assert net.enable_ipv6
    assert [p.subnet for p in net.ipam] == ["10.42.42.0/24", "fdcc:ad94:bacf:61a3::/64"]
    assert not load(SERVICE + "    internal: true\n").networks["n"].enable_ipv6
    with pytest.raises(ConfigError) as info:
        load(SERVICE + "    enable_ipv6: perhaps\n")
    assert info.value.problems[0].field == "networks.n.enable_ipv6"


@pytest.mark.parametrize(
    ("network", "fixed"),
    [
        ("    internal: true\n", True),
        ("    driver: bridge\n", True),
        ("    ipam: {driver: default}\n", True),
        ("    driver: macvlan\n", False),
        ("    ipam: {driver: some-plugin}\n", False),
        ("    ipam:\n      config: [{subnet: 10.4.0.0/24}]\n", False),  # the file's own
    ],
)
def test_which_networks_get_the_engines_subnet_fixed(network: str, fixed: bool) -> None:
    assert fixable(load(SERVICE + network).networks["n"]) is fixed
