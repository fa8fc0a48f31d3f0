"""A real git server for tests: Debian's nginx in front of git-http-backend (through
fcgiwrap), HTTP basic auth with the token as password, on a free port in a temp dir; and
a working clone to push from, as a developer (or an attacker with push access) would.

Needs Debian's `nginx`, `fcgiwrap` and `git` (scripts/ensure-docker.sh installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.daemon import free_port

BACKEND = "/usr/lib/git-core/git-http-backend"
USER = "x-access-token"

_CONF = """
worker_processes 1;
{user}
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/git(/.*)$ {{
            auth_basic "git";
            auth_basic_user_file {d}/htpasswd;
            client_max_body_size 0;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {backend};
            fastcgi_param GIT_PROJECT_ROOT {d}/repos;
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO $1;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_pass unix:{d}/fcgi.sock;
        }}
    }}
}}
"""


def git(cwd: Path | str, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    out = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, env=full, check=False
    )
    if out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


@dataclass
class GitServer:
    root: Path
    port: int
    token: str

    def url(self, name: str = "deploy.git") -> str:
        return f"http://127.0.0.1:{self.port}/git/{name}"

    def bare(self, name: str = "deploy.git") -> Path:
        return self.root / "repos" / name

    def create(self, name: str = "deploy.git") -> Path:
        path = self.bare(name)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
        git(path, "config", "http.receivepack", "true")
        return path

    def clone(self, dest: Path, name: str = "deploy.git") -> Work:
        """A developer's clone with push rights (token in a URL: this side is the test's)."""
        authed = self.url(name).replace("http://", f"http://{USER}:{self.token}@")
        subprocess.run(["git", "clone", "-q", authed, str(dest)], check=True,
                       capture_output=True)  # fmt: skip
        git(dest, "config", "user.email", "dev@example.com")
        git(dest, "config", "user.name", "dev")
        return Work(dest)


@dataclass
class Work:
    path: Path

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, *, sign_key: Path | None = None) -> str:
        git(self.path, "add", "-A")
        args = ["commit", "-q", "-m", message]
        if sign_key is not None:
            args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_key}", *args, "-S"]
        git(self.path, *args)
        return git(self.path, "rev-parse", "HEAD")

    def push(self, *, force: bool = False) -> None:
        git(self.path, "push", "-q", *(["--force"] if force else []), "origin", "HEAD:main")

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")


def ssh_signing_key(dir_: Path, name: str = "signer") -> tuple[Path, Path]:
    """An ed25519 key and an allowed-signers file naming it (principal dev@example.com)."""
    key = dir_ / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                   check=True)  # fmt: skip
    signers = dir_ / f"{name}.allowed"
    signers.write_text(f"dev@example.com {Path(str(key) + '.pub').read_text().strip()}\n")
    return key, signers


@contextlib.contextmanager
def git_http_server(root: Path, token: str = "tok-3f9a1c0e7d") -> Iterator[GitServer]:
    """nginx + fcgiwrap + git-http-backend on 127.0.0.1:<free port>, until the block ends."""
    for tool in ("nginx", "fcgiwrap"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise AssertionError(f"{tool} missing: run `bash scripts/ensure-docker.sh` as root")
    for sub in ("repos", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "htpasswd").write_text(f"{USER}:{{PLAIN}}{token}\n")
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    conf = _CONF.format(d=root, port=port, backend=BACKEND, user=user)
    (root / "nginx.conf").write_text(conf)
    sock = root / "fcgi.sock"
    # its own process group: fcgiwrap's 4 children outlive a SIGTERM to the parent alone
    fcgi = subprocess.Popen(["/usr/sbin/fcgiwrap", "-c", "4", "-s", f"unix:{sock}"],
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    nginx = subprocess.Popen(
        ["/usr/sbin/nginx", "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
        stderr=open(root / "nginx.stderr", "w"),  # noqa: SIM115 - closed with the process
    )
    server = GitServer(root, port, token)
    try:
        _wait_up(server, nginx)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(fcgi.pid, signal.SIGTERM)
        for proc in (nginx, fcgi):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_up(server: GitServer, nginx: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if nginx.poll() is not None:
            raise AssertionError(f"nginx exited: {(server.root / 'nginx.stderr').read_text()}")
        try:
            httpx.get(f"http://127.0.0.1:{server.port}/git/", timeout=1, trust_env=False)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("git server never answered")
