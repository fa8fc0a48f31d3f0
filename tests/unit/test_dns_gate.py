"""core.dns_gate: who could resolve a service's name decides whether its rollout moves
aliases. Table-driven, no fakes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controller.core.dns_gate import aliased_networks, dns_gated
from controller.core.model import NetworkAttachment, Target
from tests.unit.builders import target

NET = "demo_default"


def _with(t: Target, **spec_changes: Any) -> Target:
    return dataclasses.replace(t, spec=dataclasses.replace(t.spec, **spec_changes))


PUBLISHING = _with(
    target(), create={"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}}
)
UNPUBLISHED_PORT = _with(
    target(), create={"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": ""}]}}}
)
NO_ALIASES = _with(target(), networks=(NetworkAttachment(NET),))


@pytest.mark.parametrize(
    ("case", "t", "is_proxy", "members", "own", "gated"),
    [
        ("a client shares the network", target(), False, {NET: {"a", "client"}}, {"a"}, True),
        ("only its own containers", target(), False, {NET: {"a", "b"}}, {"a", "b"}, False),
        ("own and the proxy's", target(), False, {NET: {"a", "nginx"}}, {"a", "nginx"}, False),
        ("nobody on the network", target(), False, {}, set(), False),
        ("the proxy service itself", target(), True, {NET: {"x", "y"}}, set(), False),
        ("publishes a host port", PUBLISHING, False, {NET: {"client"}}, set(), False),
        ("a port with no host port", UNPUBLISHED_PORT, False, {NET: {"client"}}, set(), True),
        ("no aliases anywhere", NO_ALIASES, False, {NET: {"client"}}, set(), False),
        ("a removal (no target)", None, False, {NET: {"client"}}, set(), False),
    ],
)
def test_gating_table(
    case: str,
    t: Target | None,
    is_proxy: bool,
    members: dict[str, set[str]],
    own: set[str],
    gated: bool,
) -> None:
    assert dns_gated(t, is_proxy=is_proxy, members=members, own=own) is gated, case


def test_only_aliased_networks_are_inspected() -> None:
    t = _with(
        target(),
        networks=(NetworkAttachment("front", ("api",)), NetworkAttachment("back")),
    )
    assert aliased_networks(t, is_proxy=False) == ("front",)
    assert aliased_networks(t, is_proxy=True) == ()
    assert aliased_networks(PUBLISHING, is_proxy=False) == ()
    # a client on the network without aliases cannot resolve the service name there
    assert not dns_gated(t, is_proxy=False, members={"back": {"client"}}, own=set())
    assert dns_gated(t, is_proxy=False, members={"front": {"client"}}, own=set())
