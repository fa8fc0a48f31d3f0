"""network_mode service:X / volumes_from X: the create body names X's running container
(resolved by the shell at create time), and X's revision is part of the dependent's."""

from __future__ import annotations

import dataclasses

import pytest

from controller.core.model import ContainerState
from controller.errors import TemporaryError
from controller.shell.rollout.peers import resolve_peers
from tests.fakes import FakeContainer, FakeRuntime


def _add(rt: FakeRuntime, cid: str, service: str, state: ContainerState, created: float) -> None:
    labels = {
        "com.docker.compose.project": "p",
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": "1",
        "berth.managed": "true",
        "berth.revision": "r" * 16,
        "berth.tag": "1",
    }
    rt.containers[cid] = FakeContainer(
        cid, f"p-{service}-{cid}", "img", labels, {}, created, {}, state=state
    )


def test_service_references_become_the_newest_running_container() -> None:
    rt = FakeRuntime()
    _add(rt, "old", "vpn", ContainerState.EXITED, 1.0)
    _add(rt, "a1", "vpn", ContainerState.RUNNING, 2.0)
    _add(rt, "a2", "vpn", ContainerState.RUNNING, 3.0)
    _add(rt, "d1", "data", ContainerState.RUNNING, 1.0)
    body = {
        "Cmd": ["x"],
        "HostConfig": {
            "NetworkMode": "service:vpn",
            "VolumesFrom": ["service:data:ro", "legacy:rw", "service:data"],
        },
    }
    out = resolve_peers(rt, "p", body)
    assert out["HostConfig"] == {
        "NetworkMode": "container:a2",
        "VolumesFrom": ["d1:ro", "legacy:rw", "d1"],
    }
    assert body["HostConfig"]["NetworkMode"] == "service:vpn"  # the spec is not mutated


def test_a_body_without_references_is_returned_as_is_without_listing() -> None:
    rt = FakeRuntime()
    body = {"HostConfig": {"NetworkMode": "host"}}
    assert resolve_peers(rt, "p", body) is body and rt.calls == []


def test_no_running_peer_is_temporary() -> None:
    rt = FakeRuntime()
    _add(rt, "x", "vpn", ContainerState.EXITED, 1.0)
    with pytest.raises(TemporaryError, match="no running container of 'vpn'"):
        resolve_peers(rt, "p", {"HostConfig": {"NetworkMode": "service:vpn"}})


def test_a_peer_revision_is_part_of_the_dependents_revision() -> None:
    from tests.unit.builders import target

    t = target("app", tag="1")
    a = dataclasses.replace(t.spec, peers=("vpn",), peer_revisions=("vpn=aaaa",))
    b = dataclasses.replace(a, peer_revisions=("vpn=bbbb",))
    ta, tb = dataclasses.replace(t, spec=a), dataclasses.replace(t, spec=b)
    assert ta.revision != tb.revision and t.revision != ta.revision
