"""The Docker adapter's request bodies without an engine: what the core computed reaches
the Engine API request, fitted to the engine's API version, and injected files as a tar.
(tests/integration/test_contract_runtime_extra.py checks the same against Docker 20.10.)"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest

from controller.adapters import _docker_api
from controller.adapters._docker_files import archive
from controller.adapters.docker_runtime import DockerRuntime
from controller.core.model import InjectedFile, NetworkAttachment
from controller.errors import ContainerRuntimeError, NotFound

FULL = NetworkAttachment(
    "demo_front",
    ("api", "api-v2"),
    ipv4_address="10.5.0.9",
    ipv6_address="fd00:5::9",
    link_local_ips=("169.254.1.9",),
    driver_opts=(("com.example.mtu", "1400"),),
    gw_priority=5,
)
HC = {"Test": ["CMD", "true"], "Interval": 10**9, "StartInterval": 2 * 10**9}


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_docker_api, "_warned", set())


class Api:
    """The few APIClient calls DockerRuntime.create/put_files make, recorded."""

    def __init__(self, version: str = "1.41", fail: int | None = None) -> None:
        self.api_version = version
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def create_container_from_config(self, config: Any, name: str, platform: Any) -> Any:
        self.calls.append(("create", config))
        return {"Id": "c" * 64}

    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _post_json(self, url: str, data: Any) -> Any:
        self.calls.append((url, data))
        return object()

    def _raise_for_status(self, res: Any) -> None:
        return None

    def put_archive(self, cid: str, path: str, data: bytes) -> bool:
        self.calls.append(("put_archive", (cid, path, data)))
        if self.fail is not None:
            raise docker.errors.APIError("refused", explanation=f"status {self.fail}")
        return True


@pytest.fixture()
def api() -> Iterator[Api]:
    yield Api()


def runtime(api: Api) -> DockerRuntime:
    rt = DockerRuntime("unix:///nonexistent.sock")
    rt._client = api  # type: ignore[assignment]
    return rt


def test_every_endpoint_field_reaches_create_and_connect(api: Api) -> None:
    api.api_version = "1.48"
    second = NetworkAttachment("demo_back", ("api",), ipv6_address="fd00:6::9")
    runtime(api).create(
        name="demo-api-1",
        image="example/api:1",
        body={"Healthcheck": HC},
        labels={"a": "b"},
        networks=(FULL, second),
        aliases=True,
    )
    (_, config), (url, connect) = api.calls
    assert config["HostConfig"]["NetworkMode"] == "demo_front"
    assert config["Healthcheck"]["StartInterval"] == 2 * 10**9  # 1.48 knows it
    assert config["NetworkingConfig"]["EndpointsConfig"] == {
        "demo_front": {
            "Aliases": ["api", "api-v2"],
            "IPAMConfig": {
                "IPv4Address": "10.5.0.9",
                "IPv6Address": "fd00:5::9",
                "LinkLocalIPs": ["169.254.1.9"],
            },
            "DriverOpts": {"com.example.mtu": "1400"},
            "GwPriority": 5,
        }
    }
    assert url == "/networks/demo_back/connect"
    assert connect == {
        "Container": "c" * 64,
        "EndpointConfig": {"Aliases": ["api"], "IPAMConfig": {"IPv6Address": "fd00:6::9"}},
    }


def test_an_older_engine_gets_neither_field_and_it_is_said_once(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    rt = runtime(api)
    body = {"Healthcheck": HC}
    with caplog.at_level(logging.WARNING, logger="berth.docker"):
        for n in (1, 2):
            rt.create(
                name=f"x-{n}", image="i", body=body, labels={}, networks=(FULL, FULL), aliases=False
            )
    creates = [c for k, c in api.calls if k == "create"]
    connects = [c for k, c in api.calls if k != "create"]
    assert all("StartInterval" not in c["Healthcheck"] for c in creates)
    assert all(
        "GwPriority" not in c["NetworkingConfig"]["EndpointsConfig"]["demo_front"] for c in creates
    )
    assert all("GwPriority" not in c["EndpointConfig"] for c in connects)
    assert all("Aliases" not in c["EndpointConfig"] for c in connects)  # aliases=False
    assert body["Healthcheck"]["StartInterval"] == 2 * 10**9  # the spec is untouched
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert "Engine API 1.41; Healthcheck.StartInterval needs 1.44" in said[0]
    assert "Engine API 1.41; EndpointSettings.GwPriority needs 1.48" in said[1]


def test_a_reconnect_asks_for_the_old_ipv4_and_keeps_the_rest() -> None:
    att = NetworkAttachment("n", ("api",), ipv6_address="fd00::7", link_local_ips=("169.254.0.7",))
    ep = _docker_api.endpoint(att, aliases=True, api_version="1.41", ipv4="10.0.0.7")
    assert ep["IPAMConfig"] == {
        "IPv6Address": "fd00::7",
        "LinkLocalIPs": ["169.254.0.7"],
        "IPv4Address": "10.0.0.7",
    }


def test_put_files_sends_one_tar_at_root_without_directory_entries(api: Api) -> None:
    files = [
        InjectedFile("/run/secrets/db", "pw\n", uid=7, gid=8, mode=0o400),
        InjectedFile("/etc/app.conf", "x=1"),
    ]
    runtime(api).put_files("c" * 64, files)
    [(kind, (cid, path, data))] = api.calls
    assert (kind, cid, path) == ("put_archive", "c" * 64, "/")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [(m.name, m.isfile(), m.mode, m.uid, m.gid) for m in members] == [
            ("run/secrets/db", True, 0o400, 7, 8),
            ("etc/app.conf", True, 0o444, 0, 0),
        ]
        f = tar.extractfile(members[0])
        assert f is not None and f.read() == b"pw\n"


def test_put_files_of_nothing_sends_nothing(api: Api) -> None:
    runtime(api).put_files("c" * 64, [])
    assert api.calls == []


@pytest.mark.parametrize(("status", "error"), [(404, NotFound), (500, ContainerRuntimeError)])
def test_put_files_errors_are_translated_and_never_quote_the_content(
    status: int, error: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    import requests

    class Failing(Api):
        def put_archive(self, cid: str, path: str, data: bytes) -> bool:
            resp = requests.Response()
            resp.status_code = status
            raise docker.errors.APIError("refused", response=resp, explanation="no such thing")

    with caplog.at_level(logging.DEBUG), pytest.raises(error) as info:
        runtime(Failing()).put_files("c" * 64, [InjectedFile("/run/secrets/k", "TOPSECRET")])
    assert "/run/secrets/k" in str(info.value) and "TOPSECRET" not in str(info.value)
    assert "TOPSECRET" not in caplog.text


def test_a_relative_target_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ContainerRuntimeError) as info:
        archive([InjectedFile("run/x", "TOPSECRET")])
    assert "run/x" in str(info.value) and "TOPSECRET" not in str(info.value)
