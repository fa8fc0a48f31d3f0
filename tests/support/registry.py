"""A real private registry for the tests: Debian's `docker-registry` (distribution 2.8) with
TLS from a CA made here and htpasswd (bcrypt) users, trusted by the engine the way an
operator would do it: the CA in `/etc/docker/certs.d/HOST:PORT/ca.crt`.

It listens on the docker0 bridge's address, not on 127.0.0.1: the engine treats 127.0.0.0/8
as an insecure registry and would skip TLS verification there, so the TLS trust would not be
tested. A throttling proxy (`SlowProxy`) stands in for a slow or failing network.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CERTS_D = Path("/etc/docker/certs.d")
USER, PASSWORD = "berth", "s3cret-registry-pw"


def bridge_ip(client: Any) -> str:
    """The docker0 gateway (reachable by the engine on the host, not in 127.0.0.0/8)."""
    net = client.networks.get("bridge")
    cfg = (net.attrs.get("IPAM") or {}).get("Config") or []
    for c in cfg:
        if c.get("Gateway"):
            return str(c["Gateway"])
    return "172.17.0.1"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca_and_cert(d: Path, ip: str) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key): a CA, and a certificate for `ip` it signed."""
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=berth-test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text(f"subjectAltName=IP:{ip}\n")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
         "-out", "server.csr", "-subj", f"/CN={ip}", cwd=d)  # fmt: skip
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
         cwd=d)  # fmt: skip
    return d / "ca.crt", d / "server.crt", d / "server.key"


@dataclass
class RegistryServer:
    host: str  # "IP:PORT", as in an image reference
    root: Path
    ca: Path
    docker_config: Path  # a DOCKER_CONFIG directory with this registry's login
    proc: subprocess.Popen[bytes] | None = None
    config_file: Path | None = None

    def ref(self, repo: str, tag: str) -> str:
        return f"{self.host}/{repo}:{tag}"

    @property
    def auth(self) -> dict[str, str]:
        return {"username": USER, "password": PASSWORD}

    def start(self) -> None:
        assert self.config_file is not None
        log = open(self.root / "registry.log", "ab")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.answering():
                return
            if self.proc.poll() is not None:
                raise RuntimeError((self.root / "registry.log").read_text()[-2000:])
            time.sleep(0.05)
        raise RuntimeError("registry did not answer within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def answering(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        try:
            urllib.request.urlopen(f"https://{self.host}/v2/", context=ctx, timeout=1)
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, and asking for credentials
        except OSError:
            return False
        return True

    def push(self, client: Any, local: str, repo: str, tag: str) -> str:
        """Tag `local` as HOST/repo:tag, push it, return the pushed digest."""
        client.images.get(local).tag(f"{self.host}/{repo}", tag=tag)
        digest = ""
        for chunk in client.api.push(
            f"{self.host}/{repo}", tag=tag, stream=True, decode=True, auth_config=self.auth
        ):
            if chunk.get("error"):
                raise RuntimeError(chunk["error"])
            digest = (chunk.get("aux") or {}).get("Digest", digest)
        return str(digest)


def start_registry(root: Path, client: Any, *, port: int | None = None) -> RegistryServer:
    root.mkdir(parents=True, exist_ok=True)
    ip = bridge_ip(client)
    port = port or free_port(ip)
    host = f"{ip}:{port}"
    ca, crt, key = make_ca_and_cert(root, ip)
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
    ).stdout
    (root / "htpasswd").write_text(htpasswd)
    (root / "data").mkdir(exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {
            "filesystem": {"rootdirectory": str(root / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": host, "tls": {"certificate": str(crt), "key": str(key)}},
        "auth": {"htpasswd": {"realm": "berth-test", "path": str(root / "htpasswd")}},
    }
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    trust = CERTS_D / host
    trust.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca, trust / "ca.crt")
    docker_config = root / "docker-config"
    docker_config.mkdir(exist_ok=True)
    login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {host: {"auth": login}}}))
    server = RegistryServer(host, root, ca, docker_config, config_file=root / "config.yml")
    server.start()
    return server


def forget_trust(server: RegistryServer) -> None:
    shutil.rmtree(CERTS_D / server.host, ignore_errors=True)


class SlowProxy:
    """A TCP proxy in front of the registry: `rate` bytes/s towards the client (None: full
    speed); `cut()` closes every open connection and refuses new ones until `heal()`."""

    def __init__(self, upstream: str, listen_ip: str, *, rate: int | None = None) -> None:
        self.upstream = upstream
        self.rate = rate
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((listen_ip, 0))
        self._sock.listen(64)
        self.host = f"{listen_ip}:{self._sock.getsockname()[1]}"
        self._conns: list[socket.socket] = []
        self._down = threading.Event()
        self._closed = threading.Event()
        self.sent = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._down.set()
        for c in list(self._conns):
            _shut(c)

    def heal(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        _shut(self._sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self._down.is_set():
                _shut(client)
                continue
            host, port = self.upstream.rsplit(":", 1)
            try:
                up = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                _shut(client)
                continue
            self._conns += [client, up]
            threading.Thread(target=self._pipe, args=(client, up, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, self.rate), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, rate: int | None) -> None:
        chunk = 16384 if rate is None else max(1024, rate // 20)
        try:
            while True:
                data = src.recv(chunk)
                if not data:
                    break
                dst.sendall(data)
                self.sent += len(data)
                if rate is not None:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            _shut(src)
            _shut(dst)


def _shut(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


def cleanup_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root, exist_ok=True)


def alias(server: RegistryServer, host: str) -> None:
    """Trust and log in to `host` (a proxy in front of `server`) as to the server itself."""
    trust = CERTS_D / host
    trust.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.ca, trust / "ca.crt")
    cfg_file = server.docker_config / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["auths"][host] = cfg["auths"][server.host]
    cfg_file.write_text(json.dumps(cfg))
