"""The example stack (compose/docker-compose.prod.yml + desired/gesalps.yaml) is what
Berth's README promises: a valid compose-spec file that Berth accepts, with production
hygiene on every service, and nginx templates that match the compose mounts.

No Docker needed; the nginx templates are checked with a real `nginx -t` in
tests/integration/test_example_stack.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.support.berth import berth

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose" / "docker-compose.prod.yml"
GPU_OVERRIDE = REPO / "compose" / "docker-compose.gpu.yml"
DEMO_OVERRIDE = REPO / "compose" / "docker-compose.demo.yml"
DESIRED = REPO / "desired"
SITE_CONF = REPO / "nginx" / "conf.d" / "gesalps.conf"
# the vendored copy (test_compose_schema.py checks it against ../shared when that is there)
SCHEMA = REPO / "tests" / "fixtures" / "compose-spec" / "compose-spec.json"
SERVICES = {"api", "synth-worker", "report-service", "ollama", "db", "nginx"}


def _load(path: Path) -> dict[str, Any]:
    doc = YAML(typ="safe").load(path.read_text())  # resolves the `<<: *service` merges
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target -> (source, options) of the short-syntax volumes."""
    out: dict[str, tuple[str, str]] = {}
    for item in service.get("volumes", []):
        source, target, *opts = str(item).split(":")
        out[target] = (source, ",".join(opts))
    return out


# ---------------------------------------------------------------- standard and accepted


@pytest.mark.parametrize("path", [COMPOSE, GPU_OVERRIDE, DEMO_OVERRIDE], ids=lambda p: p.name)
def test_matches_compose_spec(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(_load(path)), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_berth_validate_accepts_the_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_IMAGE", "berth-demo/llm-standin")
    res = berth(DESIRED, tmp_path / "state", "validate", timeout=60)
    assert res.code == 0, res.out + res.err
    assert "6 service(s)" in res.out


@pytest.mark.parametrize("override", [GPU_OVERRIDE, DEMO_OVERRIDE], ids=lambda p: p.name)
def test_berth_validate_accepts_the_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, override: Path
) -> None:
    """The GPU variant operators switch to, and the demo's faster health checks: both
    compose files listed in desired/."""
    text = (DESIRED / "gesalps.yaml").read_text()
    text = text.replace(
        "compose: ../compose/docker-compose.prod.yml",
        f"compose:\n  - {COMPOSE}\n  - {override}",
        1,
    )
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "gesalps.yaml").write_text(text)
    monkeypatch.delenv("OLLAMA_IMAGE", raising=False)  # the real ollama/ollama image
    # desired/ lives elsewhere here: the operator's tree is named explicitly (env form)
    monkeypatch.setenv("BERTH_COMPOSE_ROOT", str(COMPOSE.parent.parent))
    res = berth(desired, tmp_path / "state", "validate", timeout=60)
    assert res.code == 0, res.out + res.err


def test_desired_names_the_example_services() -> None:
    doc = _load(DESIRED / "gesalps.yaml")
    assert doc["project"] == "gesalps"
    assert doc["compose"] == "../compose/docker-compose.prod.yml"
    assert {name: s["tag"] for name, s in doc["services"].items()} == {
        "api": "1.0.0",
        "synth-worker": "1.0.0",
        "report-service": "1.0.0",
        "ollama": "1.0.0",
    }


# ---------------------------------------------------------------- production hygiene


def test_the_stack_has_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES


def test_only_nginx_publishes_ports(services: dict[str, dict[str, Any]]) -> None:
    publishing = {name for name, s in services.items() if s.get("ports")}
    assert publishing == {"nginx"}
    for port in services["nginx"]["ports"]:
        # loopback unless the operator sets BERTH_BIND
        assert str(port).startswith(("${BERTH_BIND:-127.0.0.1}:", "127.0.0.1:")), port
    demo = [p for p in services["nginx"]["ports"] if str(p).endswith(":8081")]
    assert demo and all(str(p).startswith("127.0.0.1:") for p in demo)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_is_production_ready(services: dict[str, dict[str, Any]], name: str) -> None:
    svc = services[name]
    hc = svc.get("healthcheck") or {}
    assert hc.get("test"), f"{name}: no healthcheck"
    assert hc.get("interval") == "10s" and hc.get("retries") == 3, hc
    assert hc.get("start_period"), f"{name}: no start_period"
    assert svc.get("stop_grace_period") == "30s"
    assert svc.get("restart") == "unless-stopped"
    resources = (svc.get("deploy") or {}).get("resources") or {}
    assert resources.get("limits", {}).get("memory"), f"{name}: no memory limit"
    assert resources.get("limits", {}).get("cpus"), f"{name}: no cpu limit"
    assert resources.get("reservations", {}).get("memory"), f"{name}: no memory reservation"
    logging = svc.get("logging") or {}
    assert logging.get("driver") == "json-file"
    assert logging.get("options") == {"max-size": "10m", "max-file": "3"}
    assert "backend" in svc.get("networks", [])
    assert "container_name" not in svc


def test_gpu_reservation_is_only_in_the_override(services: dict[str, dict[str, Any]]) -> None:
    """A device reservation keeps the container from starting without the NVIDIA runtime."""
    assert "devices" not in services["ollama"]["deploy"]["resources"]["reservations"]
    gpu = _load(GPU_OVERRIDE)["services"]["ollama"]["deploy"]["resources"]["reservations"]
    assert gpu["devices"] == [{"capabilities": ["gpu"], "count": "all"}]


def test_rollout_options(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert api["deploy"]["replicas"] == 2
    assert api["image"] == "${REGISTRY:-berth-demo}/api"
    xb = api["x-berth"]
    assert xb["upstream"] == {"name": "api_backend", "port": 8000}
    assert xb["health"]["path"] == "/health" and xb["health"]["healthy_threshold"] == 2
    assert re.fullmatch(xb["allowed_tags"], "1.0.0")
    assert not re.fullmatch(xb["allowed_tags"], "latest")
    assert services["report-service"]["x-berth"]["upstream"] == {
        "name": "report_backend",
        "port": 8001,
    }
    assert services["ollama"]["x-berth"]["strategy"] == "stop-first"
    assert services["ollama"]["image"] == "${OLLAMA_IMAGE:-ollama/ollama}"
    assert services["nginx"]["image"] == "${NGINX_IMAGE:-berth-demo/nginx:1}"


def test_the_database_and_the_api_release_task(services: dict[str, dict[str, Any]]) -> None:
    """issue 15: the API's schema migrations are its release task, /notes a smoke check."""
    db, api = services["db"], services["api"]
    assert db["image"] == "${POSTGRES_IMAGE:-berth-demo/postgres:15}"  # not in desired/
    assert db["x-berth"]["strategy"] == "stop-first"
    assert db["volumes"] == ["db-data:/var/lib/postgresql/data"]
    assert db["networks"] == ["backend"] and not db.get("ports")
    assert api["depends_on"]["db"] == {"condition": "service_healthy"}
    assert api["environment"]["DATABASE_URL"].endswith("@db:5432/gesalps")
    assert api["x-berth"]["release"] == [
        {"name": "migrate", "command": ["python3", "-m", "app.migrate"], "timeout": "2m"}
    ]
    [smoke] = api["x-berth"]["smoke"]
    assert (smoke["path"], smoke["method"], smoke["status"]) == ("/notes", "GET", 200)


def test_the_demo_override_changes_only_health_timing() -> None:
    override = _load(DEMO_OVERRIDE)["services"]
    assert set(override) == SERVICES
    for name, svc in override.items():
        assert set(svc) == {"healthcheck"}, name
        assert set(svc["healthcheck"]) <= {"interval", "start_period"}, name


# ---------------------------------------------------------------- compose <-> nginx


def test_upstreams_file_is_in_a_directory_mounted_into_nginx(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Berth replaces the file by rename; only a directory mount shows nginx the new inode."""
    upstreams = Path(compose["x-berth"]["proxy"]["upstreams_file"])
    assert compose["x-berth"]["proxy"]["service"] == "nginx"
    mounts = _mounts(services["nginx"])
    by_source = {src: (target, opts) for target, (src, opts) in mounts.items()}
    assert str(upstreams) not in by_source, "single-file bind mount of the upstreams file"
    target, opts = by_source[str(upstreams.parent)]
    # read-write: nginx creates the dynamic switch's control socket there
    assert "ro" not in opts.split(",")
    assert f"include {target}/{upstreams.name};" in SITE_CONF.read_text()
    assert mounts["/etc/nginx/conf.d"] == ("../nginx/conf.d", "ro")
    assert mounts["/etc/nginx/certs"] == ("../nginx/certs", "ro")


def test_site_config_routes_to_the_upstreams_berth_writes(
    services: dict[str, dict[str, Any]],
) -> None:
    conf = SITE_CONF.read_text()
    names = {
        s["x-berth"]["upstream"]["name"]
        for s in services.values()
        if "x-berth" in s and "upstream" in s["x-berth"]
    }
    assert names == {"api_backend", "report_backend"}
    routed = set(re.findall(r"proxy_pass\s+http://([A-Za-z0-9_]+)", conf))
    assert routed == names
    assert not re.search(r"^\s*upstream\s", conf, re.M), "upstreams belong to Berth's file"
    for listen in ("listen 8080", "listen 8081", "listen 8443 ssl"):
        assert listen in conf
    assert "proxy_next_upstream error timeout;" in conf
    assert "non_idempotent" not in conf.replace("never `non_idempotent`", "")
    assert 'proxy_set_header Connection "";' in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf


def test_generated_upstreams_file_is_gitignored() -> None:
    ignored = (REPO / "nginx" / ".gitignore").read_text().splitlines()
    assert "upstreams/upstreams.conf" in ignored
    assert (REPO / "nginx" / "upstreams" / ".gitkeep").exists()
