from __future__ import annotations

from controller.core.upstream import Backend, parse_upstreams, render_upstreams

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
