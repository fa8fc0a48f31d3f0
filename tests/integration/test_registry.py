"""Pulls from a real private registry: TLS from a test CA (trusted through certs.d), htpasswd
users, credentials from a docker config; digests pinned at plan time (issue 13, items 1-2).

Every rollout here starts from an image that is NOT on the host, so the pull is real."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from controller.adapters.registry import Registry, RegistryError, docker_auth, engine_insecure
from tests.conftest import TmpStack
from tests.fakes import FakeRegistry
from tests.support.berth import berth, popen_berth
from tests.support.images import healthcheck
from tests.support.registry import (
    PASSWORD,
    USER,
    RegistryServer,
    SlowProxy,
    alias,
    forget_trust,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]
REPO = "berth/app"


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer, docker_client: Any) -> dict[str, str]:
    """tag -> pushed digest: 1.0.0 and 2.0.0 good, 3.0.0 crashes at start."""
    from tests.support.images import ensure_app_image

    out = {}
    for tag, mode in (("1.0.0", "good"), ("2.0.0", "good"), ("3.0.0", "crash")):
        local = ensure_app_image(f"{tag}-reg" if mode == "good" else "3.0.0-crash", mode=mode,
                                 client=docker_client)  # fmt: skip
        out[tag] = registry.push(docker_client, local, REPO, tag)
    return out


@pytest.fixture()
def logged_in(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> RegistryServer:
    monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
    return registry


def drop_local(client: Any, registry: RegistryServer, host: str | None = None) -> None:
    """No copy of the registry's images on the host: the next rollout must pull. Only the
    registry's names are removed (the local source images share their ids)."""
    prefix = f"{host or registry.host}/"
    for img in client.images.list():
        for ref in [*(img.attrs.get("RepoTags") or []), *(img.attrs.get("RepoDigests") or [])]:
            if ref.startswith(prefix):
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(ref, force=True)


def compose(registry: RegistryServer, *, track: str | None = None, strategy: str = "start-first",
            repo: str = REPO, host: str | None = None) -> dict[str, Any]:  # fmt: skip
    xb: dict[str, Any] = {"strategy": strategy, "progress_deadline": "30s"}
    if track:
        xb["track"] = track
    return {
        "services": {
            "api": {
                "image": f"{host or registry.host}/{repo}",
                "init": True,
                "stop_grace_period": "2s",
                "healthcheck": {"test": healthcheck(), "interval": "500ms", "retries": 3},
                "x-berth": xb,
            }
        }
    }


@contextlib.contextmanager
def proxied(registry: RegistryServer, *, rate: int | None = None) -> Iterator[SlowProxy]:
    """A SlowProxy in front of the registry, trusted and logged in to like the registry."""
    proxy = SlowProxy(registry.host, registry.host.rsplit(":", 1)[0], rate=rate)
    try:
        alias(registry, proxy.host)
        yield proxy
    finally:
        proxy.close()
        forget_trust(RegistryServer(proxy.host, registry.root, registry.ca, registry.docker_config))


def containers(client: Any, project: str) -> list[Any]:
    return client.containers.list(filters={"label": f"com.docker.compose.project={project}"})


# -- the port's contract: the fake registry answers as the real one does -------------------


def test_registry_port_contract(
    registry: RegistryServer, pushed: dict[str, str], docker_client: Any
) -> None:
    real = Registry(
        auth=docker_auth(str(registry.docker_config / "config.json")),
        insecure=engine_insecure(docker_client.api.info),
    )
    ref = registry.ref(REPO, "1.0.0")
    fake = FakeRegistry({registry.ref(REPO, t): d for t, d in pushed.items()})
    for port in (real, fake):
        assert port.digest(ref) == pushed["1.0.0"]
        assert sorted(port.tags(f"{registry.host}/{REPO}")) == ["1.0.0", "2.0.0", "3.0.0"]
        with pytest.raises(RegistryError) as missing:
            port.digest(registry.ref(REPO, "9.9.9"))
        assert missing.value.kind == "not_found"
        assert "not found" in str(missing.value)
    denied = Registry(auth=lambda host: None, insecure=engine_insecure(docker_client.api.info))
    with pytest.raises(RegistryError) as no_login:
        denied.digest(ref)
    assert no_login.value.kind == "unauthorized"
    assert "credentials" in str(no_login.value)
    assert PASSWORD not in str(no_login.value)
    # the fake's unreachable answer is the real one's when nothing listens
    closed = Registry(auth=lambda host: None, insecure=lambda host: False, timeout=2)
    with pytest.raises(RegistryError) as down:
        closed.digest(f"{registry.host.rsplit(':', 1)[0]}:1/{REPO}:1.0.0")
    with pytest.raises(RegistryError) as fake_down:
        FakeRegistry(down=True).digest(ref)
    assert down.value.kind == fake_down.value.kind == "unreachable"


def test_untrusted_ca_is_refused(registry: RegistryServer, pushed: dict[str, str],
                                 docker_client: Any, tmp_path: Path) -> None:  # fmt: skip
    """Trust comes from certs.d for that host: an empty certs dir means an unknown CA."""
    client = Registry(
        auth=docker_auth(str(registry.docker_config / "config.json")),
        insecure=engine_insecure(docker_client.api.info),
        certs_dir=str(tmp_path),
    )
    with pytest.raises(RegistryError) as exc:
        client.digest(registry.ref(REPO, "1.0.0"))
    assert exc.value.kind == "unreachable"
    assert "certificate" in str(exc.value).lower()


def test_an_insecure_registry_is_asked_over_tls_without_verifying(
    registry: RegistryServer, pushed: dict[str, str], tmp_path: Path
) -> None:
    """A registry in the engine's insecure-registries: TLS is still tried first, and the
    unknown CA is accepted as the engine accepts it (no trust store loaded for it)."""
    client = Registry(
        auth=docker_auth(str(registry.docker_config / "config.json")),
        insecure=lambda host: True,
        certs_dir=str(tmp_path),  # nothing trusted: only skipping verification can work
    )
    assert client.digest(registry.ref(REPO, "1.0.0")) == pushed["1.0.0"]


def test_multi_arch_index_digest_is_pinned(registry: RegistryServer, pushed: dict[str, str],
                                           docker_client: Any) -> None:  # fmt: skip
    """An OCI index over the pushed manifest: the tag resolves to the index's digest (what
    is pinned), and the engine pulls that digest, choosing the platform itself."""
    import base64
    import ssl
    import urllib.request

    real = Registry(
        auth=docker_auth(str(registry.docker_config / "config.json")),
        insecure=engine_insecure(docker_client.api.info),
    )
    ctx = ssl.create_default_context(cafile=str(registry.ca))
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    url = f"https://{registry.host}/v2/{REPO}/manifests/{pushed['1.0.0']}"
    req = urllib.request.Request(url, method="GET")
    req.add_header("Authorization", auth)
    req.add_header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
    with urllib.request.urlopen(req, context=ctx) as resp:
        manifest = resp.read()
        media = resp.headers["Content-Type"]
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": media, "digest": pushed["1.0.0"], "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }).encode()  # fmt: skip
    put = urllib.request.Request(
        f"https://{registry.host}/v2/{REPO}/manifests/multi", data=index, method="PUT"
    )
    put.add_header("Authorization", auth)
    put.add_header("Content-Type", "application/vnd.oci.image.index.v1+json")
    with urllib.request.urlopen(put, context=ctx) as resp:
        index_digest = resp.headers["Docker-Content-Digest"]
    assert index_digest != pushed["1.0.0"]
    assert real.digest(registry.ref(REPO, "multi")) == index_digest
    drop_local(docker_client, registry)
    docker_client.api.pull(f"{registry.host}/{REPO}", tag=index_digest, auth_config=registry.auth)
    assert docker_client.images.get(f"{registry.host}/{REPO}@{index_digest}")


# -- rollouts -------------------------------------------------------------------------------


def test_apply_pulls_with_the_docker_config_and_runs_the_digest(
    logged_in: RegistryServer, pushed: dict[str, str], docker_client: Any,
    tmp_stack: TmpStack, project: str,
) -> None:  # fmt: skip
    drop_local(docker_client, logged_in)
    s = tmp_stack(compose(logged_in), {"api": {"tag": "1.0.0"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    [c] = containers(docker_client, project)
    want = f"{logged_in.host}/{REPO}:1.0.0@{pushed['1.0.0']}"
    assert c.attrs["Config"]["Image"] == want
    assert c.labels["berth.digest"] == pushed["1.0.0"]
    assert c.labels["berth.tag"] == "1.0.0"
    assert "pulled" in r.out + r.err
    hist = json.loads(berth(s.desired_dir, s.state_dir, "history", "api", "--json").out)
    assert hist[0]["to_tag"] == "1.0.0" and hist[0]["to_digest"] == pushed["1.0.0"]
    [row] = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)
    assert row["digest"] == pushed["1.0.0"] and row["ready"] == 1
    assert pushed["1.0.0"][:19] in berth(s.desired_dir, s.state_dir, "status").out
    assert pushed["1.0.0"][:19] in berth(s.desired_dir, s.state_dir, "history", "api").out
    again = berth(s.desired_dir, s.state_dir, "plan")
    assert again.code == 0, again.out  # pinned and unchanged: nothing to do


def test_a_moved_tag_is_reported_when_pinned_and_rolled_out_when_tracked(
    logged_in: RegistryServer, pushed: dict[str, str], docker_client: Any,
    tmp_stack: TmpStack, project: str,
) -> None:  # fmt: skip
    repo = f"moving/{project}"
    first = logged_in.push(docker_client, "berth-test/app:1.0.0-reg", repo, "stable")
    drop_local(docker_client, logged_in)
    s = tmp_stack(compose(logged_in, repo=repo), {"api": {"tag": "stable"}})
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    [before] = containers(docker_client, project)
    # CI rebuilds and pushes the same tag
    moved = logged_in.push(docker_client, "berth-test/app:2.0.0-reg", repo, "stable")
    assert moved != first
    plan = berth(s.desired_dir, s.state_dir, "plan")
    assert plan.code == 0, plan.out + plan.err  # pinned: nothing to roll out...
    assert f"moved to {moved}" in plan.out  # ...but the drift is said
    [row] = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)
    assert row["digest"] == first and row["digest_drift"] == moved
    assert [c.id for c in containers(docker_client, project)] == [before.id]
    # the operator opts in to following the tag
    s2 = tmp_stack(compose(logged_in, repo=repo, track="digest"), {"api": {"tag": "stable"}})
    assert berth(s2.desired_dir, s2.state_dir, "plan").code == 2
    r = berth(s2.desired_dir, s2.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    [after] = containers(docker_client, project)
    assert after.labels["berth.digest"] == moved and after.id != before.id


@pytest.mark.parametrize("strategy", ["start-first", "stop-first"])
def test_wrong_credentials_fail_clearly_and_touch_nothing(
    registry: RegistryServer, pushed: dict[str, str], docker_client: Any, tmp_stack: TmpStack,
    project: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, strategy: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
    drop_local(docker_client, registry)
    s = tmp_stack(compose(registry, strategy=strategy), {"api": {"tag": "1.0.0"}})
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    [old] = containers(docker_client, project)
    bad = tmp_path / "bad-config"
    bad.mkdir()
    login = __import__("base64").b64encode(f"{USER}:wrong".encode()).decode()
    (bad / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": login}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(bad))
    tmp_stack(compose(registry, strategy=strategy), {"api": {"tag": "2.0.0"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 3, r.out + r.err
    assert "credentials" in r.out + r.err
    assert "wrong" not in r.out + r.err
    [still] = containers(docker_client, project)
    assert still.id == old.id and still.status == "running"  # stop-first: not stopped
    [row] = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)
    assert not row["quarantined"]  # the host's login is at fault, not the tag: retried
    monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
    fixed = berth(s.desired_dir, s.state_dir, "apply")
    assert fixed.code == 0, fixed.out + fixed.err
    [new] = containers(docker_client, project)
    assert new.labels["berth.tag"] == "2.0.0"


def test_unknown_tag_fails_clearly_and_is_retried_not_quarantined(
    logged_in: RegistryServer, pushed: dict[str, str], docker_client: Any,
    tmp_stack: TmpStack, project: str,
) -> None:  # fmt: skip
    s = tmp_stack(compose(logged_in, strategy="stop-first"), {"api": {"tag": "1.0.0"}})
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    [old] = containers(docker_client, project)
    tmp_stack(compose(logged_in, strategy="stop-first"), {"api": {"tag": "4.0.0"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 3
    assert "no such tag" in (r.out + r.err).lower() or "not found" in (r.out + r.err).lower()
    [still] = containers(docker_client, project)
    assert still.id == old.id and still.status == "running"
    [row] = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)
    assert not row["quarantined"]
    # CI finishes pushing the tag it committed: the next pass takes it, no `berth retry`
    logged_in.push(docker_client, "berth-test/app:2.0.0-reg", REPO, "4.0.0")
    r2 = berth(s.desired_dir, s.state_dir, "apply")
    assert r2.code == 0, r2.out + r2.err


def test_credential_helper_is_used(
    registry: RegistryServer, pushed: dict[str, str], docker_client: Any, tmp_stack: TmpStack,
    project: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """`credHelpers` in the docker config: the helper program gives the login, for the
    digest lookup and for the engine's pull alike."""
    bindir, cfgdir = tmp_path / "bin", tmp_path / "cfg"
    bindir.mkdir()
    cfgdir.mkdir()
    calls = tmp_path / "helper-calls"
    helper = bindir / "docker-credential-berthtest"
    helper.write_text(
        "#!/bin/sh\n"
        f'read host; echo "$1 $host" >> {calls}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$host"\n'
    )
    helper.chmod(0o755)
    (cfgdir / "config.json").write_text(json.dumps({"credHelpers": {registry.host: "berthtest"}}))
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(cfgdir))
    drop_local(docker_client, registry)
    s = tmp_stack(compose(registry), {"api": {"tag": "2.0.0"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    assert "get" in calls.read_text()
    [c] = containers(docker_client, project)
    assert c.labels["berth.digest"] == pushed["2.0.0"]


# -- a slow registry, and one that goes away mid-pull -------------------------------------


def big_image(client: Any, tag: str) -> str:
    """The app image plus an 8 MiB layer of random bytes: a pull that takes a while."""
    from tests.support.images import ensure_app_image

    base = ensure_app_image("1.0.0-reg", client=client)
    ref = f"berth-test/big:{tag}"
    try:
        client.images.get(ref)
        return ref
    except docker.errors.ImageNotFound:
        pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            ("Dockerfile", f"FROM {base}\nCOPY blob /blob\n".encode()),
            ("blob", os.urandom(8 << 20)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=ref, rm=True)
    return ref


def test_slow_registry_shows_progress_and_a_cut_is_survived(
    registry: RegistryServer, pushed: dict[str, str], docker_client: Any, tmp_stack: TmpStack,
    project: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Through a proxy at 2 MiB/s: progress lines come while the 8 MiB layer downloads; the
    proxy then drops every connection for a moment (the registry down mid-pull): the
    engine resumes the layer, the rollout completes, and the old container served meanwhile."""
    big = big_image(docker_client, "1")
    registry.push(docker_client, big, "berth/big", "1")
    # the 8 MiB layer must not be on the host: it was built here, so drop the image itself
    docker_client.images.remove(docker_client.images.get(big).id, force=True)
    with proxied(registry, rate=2 << 20) as proxy:
        monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
        drop_local(docker_client, registry, proxy.host)
        s = tmp_stack(compose(registry, host=proxy.host), {"api": {"tag": "1.0.0"}})
        assert berth(s.desired_dir, s.state_dir, "apply").code == 0
        [old] = containers(docker_client, project)
        tmp_stack(compose(registry, host=proxy.host, repo="berth/big"), {"api": {"tag": "1"}})
        proc = popen_berth(s.desired_dir, s.state_dir, "apply")

        def cut_midway() -> None:
            start = proxy.sent
            deadline = time.monotonic() + 60
            while proxy.sent - start < (3 << 20) and time.monotonic() < deadline:
                time.sleep(0.05)
            proxy.cut()
            time.sleep(1.0)
            proxy.heal()

        cutter = threading.Thread(target=cut_midway)
        cutter.start()
        during = [c.id for c in containers(docker_client, project)]
        out, err = proc.communicate(timeout=180)
        cutter.join()
        assert old.id in during
        assert proc.returncode == 0, out + err
        progress = [ln for ln in (out + err).splitlines() if "MiB" in ln and "layers" in ln]
        assert len(progress) >= 2, out + err
        [new] = containers(docker_client, project)
        assert new.labels["berth.tag"] == "1" and new.labels.get("berth.digest")


def test_daemon_reports_a_moved_tag_in_metrics_and_status(
    logged_in: RegistryServer, pushed: dict[str, str], docker_client: Any,
    tmp_stack: TmpStack, project: str, tmp_path: Path,
) -> None:  # fmt: skip
    """`berth run --digest-interval 1`: pulls are counted; when the pinned tag moves, the
    drift gauge turns 1 and /status says which digest the tag is at now; nothing is
    replaced."""
    from tests.support.daemon import berth_run, wait_for

    repo = f"moving/{project}d"
    first = logged_in.push(docker_client, "berth-test/app:1.0.0-reg", repo, "stable")
    drop_local(docker_client, logged_in)
    s = tmp_stack(compose(logged_in, repo=repo), {"api": {"tag": "stable"}})
    extra = ["--digest-interval", "1"]
    with berth_run(s.desired_dir, s.state_dir, resync=1.0, log=tmp_path / "berth.log",
                   extra=extra) as d:  # fmt: skip
        wait_for(lambda: len(containers(docker_client, project)) == 1, 60, "never ran")
        [before] = containers(docker_client, project)
        assert d.metric("berth_image_pulls_total", project=project, service="api",
                        result="pulled") == 1  # fmt: skip
        assert d.metric("berth_image_digest_drift", project=project, service="api") == 0
        moved = logged_in.push(docker_client, "berth-test/app:2.0.0-reg", repo, "stable")
        wait_for(lambda: d.metric("berth_image_digest_drift", project=project,
                                  service="api") == 1, 30, "drift never reported")  # fmt: skip
        [row] = d.get("/status").json()
        assert row["digest"] == first and row["digest_drift"] == moved
        assert [c.id for c in containers(docker_client, project)] == [before.id]
        assert "now points at" in (tmp_path / "berth.log").read_text()


def test_registry_down_fails_clearly_touches_nothing_and_is_retried(
    registry: RegistryServer, pushed: dict[str, str], docker_client: Any, tmp_stack: TmpStack,
    project: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The registry (a proxy in front of it) stops answering before a rollout: the digest
    lookup and the pull fail as 'unreachable', the old container serves on, nothing is
    quarantined; when it is back, the next apply rolls out."""
    with proxied(registry) as proxy:
        monkeypatch.setenv("DOCKER_CONFIG", str(registry.docker_config))
        drop_local(docker_client, registry, proxy.host)
        s = tmp_stack(compose(registry, host=proxy.host), {"api": {"tag": "1.0.0"}})
        assert berth(s.desired_dir, s.state_dir, "apply").code == 0
        [old] = containers(docker_client, project)
        proxy.cut()  # connections refused from now on
        tmp_stack(compose(registry, host=proxy.host), {"api": {"tag": "2.0.0"}})
        r = berth(s.desired_dir, s.state_dir, "apply")
        assert r.code == 3, r.out + r.err
        assert "unreachable" in (r.out + r.err).lower()
        [still] = containers(docker_client, project)
        assert still.id == old.id and still.status == "running"
        [row] = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)
        assert not row["quarantined"]
        proxy.heal()
        back = berth(s.desired_dir, s.state_dir, "apply")
        assert back.code == 0, back.out + back.err
        [new] = containers(docker_client, project)
        assert new.labels["berth.tag"] == "2.0.0"
