"""The fakes of the task ports (tests/fakes_tasks.py) against the adapters: what the
executor's unit tests rely on must hold for the real HttpClient and HookRunner."""

from __future__ import annotations

import socket

import pytest

from controller.adapters.hooks import HookRunner
from controller.adapters.http_client import HttpClient
from controller.core.task_options import HookSpec
from controller.errors import ProbeError
from controller.task_ports import HttpAnswer
from tests.fakes_tasks import FakeHooks, FakeHttp
from tests.support.wire import recorder

BODY = b'{"items": [1, 2]}'


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_answer_has_the_same_shape_from_the_client_and_the_fake() -> None:
    with recorder() as rec:
        rec.routes["/items"] = (201, [("X-Thing", "a"), ("X-Thing", "b")], BODY)
        real = HttpClient().request(
            "127.0.0.1", rec.port, "POST", "/items", headers={}, body=b"{}", timeout=2, limit=9
        )
    fake = FakeHttp({"/items": HttpAnswer(201, {"x-thing": "a, b"}, BODY)}).request(
        "127.0.0.1", rec.port, "POST", "/items", headers={}, body=b"{}", timeout=2, limit=9
    )
    for answer in (real, fake):
        assert answer.status == 201 and answer.body == BODY[:9]  # cut at the limit
        assert answer.headers["x-thing"] == "a, b"  # lower-cased names, repeats joined


@pytest.mark.parametrize("client", [HttpClient(), FakeHttp()], ids=["real", "fake"])
def test_a_closed_port_is_a_probe_error_saying_refused(client: object) -> None:
    with pytest.raises(ProbeError, match="connection refused"):
        client.request(  # type: ignore[attr-defined]
            "127.0.0.1", _closed_port(), "GET", "/x", headers={}, body=None, timeout=2
        )


def test_a_status_that_is_not_2xx_is_an_answer_not_an_error() -> None:
    with recorder() as rec:
        rec.routes["/down"] = (503, [], b"down")
        real = HttpClient().request(
            "127.0.0.1", rec.port, "GET", "/down", headers={}, body=None, timeout=2
        )
    fake = FakeHttp({"/down": HttpAnswer(503, {}, b"down")}).request(
        "127.0.0.1", 1, "GET", "/down", headers={}, body=None, timeout=2
    )
    assert (real.status, real.body) == (fake.status, fake.body) == (503, b"down")


def test_hook_results_have_the_same_shape_from_the_runner_and_the_fake(tmp_path: object) -> None:
    runner, fake = HookRunner(), FakeHooks(fail={"false"})
    ok, bad = HookSpec(command=("true",), timeout=5), HookSpec(command=("false",), timeout=5)
    for hooks in (runner, fake):
        good = hooks.run(ok, {"event": "start"}, cwd="/")
        failed = hooks.run(bad, {"event": "start"}, cwd="/")
        assert (good.ok, good.detail) == (True, "exit 0") and good.seconds >= 0
        assert not failed.ok and failed.detail.startswith("exit 1")
