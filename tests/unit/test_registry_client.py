"""The registry client's pure parts: reference normalisation, paging, insecure hosts."""

from __future__ import annotations

import pytest

from controller.adapters.registry import ImageName, _next_page, engine_insecure, split_reference

DIG = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "registry", "repo", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("team/api:2", "docker.io", "team/api", "2", None),
        ("reg.example:5000/team/api:2", "reg.example:5000", "team/api", "2", None),
        ("reg.example:5000/team/api", "reg.example:5000", "team/api", None, None),
        ("localhost/api:1", "localhost", "api", "1", None),
        (f"10.0.0.5:5443/a/b/c:1@{DIG}", "10.0.0.5:5443", "a/b/c", "1", DIG),
    ],
)
def test_split_reference(
    ref: str, registry: str, repo: str, tag: str | None, digest: str | None
) -> None:
    assert split_reference(ref) == (ImageName(registry, repo), tag, digest)


def test_docker_hub_is_asked_at_its_api_host() -> None:
    assert split_reference("nginx")[0].api_host == "registry-1.docker.io"
    assert split_reference("r.example/x")[0].api_host == "r.example"


def test_next_page_stays_on_the_repository() -> None:
    good = '</v2/team/api/tags/list?last=b&n=1000>; rel="next"'
    assert _next_page(good, "team/api") == "/v2/team/api/tags/list?last=b&n=1000"
    assert _next_page('<https://evil.example/v2/x/tags/list>; rel="next"', "team/api") is None
    assert _next_page("", "team/api") is None
    assert _next_page('</v2/team/api/tags/list?last=b>; rel="prev"', "team/api") is None


def test_insecure_follows_the_engine() -> None:
    info = {
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {
                "plain.example:5000": {"Secure": False},
                "docker.io": {"Secure": True},
            },
        }
    }
    insecure = engine_insecure(lambda: info)
    assert insecure("127.0.0.1:5000")
    assert insecure("localhost:5000")
    assert insecure("plain.example:5000")
    assert not insecure("172.17.0.1:5443")
    assert not insecure("registry.example.com")
    assert not insecure("[::1]:5000")


def test_insecure_without_an_answer_from_the_engine_is_dockers_default() -> None:
    def boom() -> dict[str, object]:
        raise OSError("403 from the socket proxy")

    insecure = engine_insecure(boom)
    assert insecure("127.0.0.1:5000")
    assert not insecure("172.17.0.1:5443")
    assert not insecure("registry.example.com")
