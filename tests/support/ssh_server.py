"""A real SSH git server for tests: Debian's OpenSSH `sshd`, run in the foreground
(`sshd -D -e`) by the test on 127.0.0.1:<free port>, with its own host key, a config and
an authorized_keys file in a temp dir, serving bare repositories from that dir to the
current user (root in CI's container) through git-upload-pack/git-receive-pack.

The deploy key is an ed25519 key made with ssh-keygen; `known_hosts` names the host key as
`[127.0.0.1]:PORT`. sshd runs in its own process group, which is killed when the block
ends, with any connection it forked.

Needs Debian's `openssh-server` and `openssh-client` (scripts/ensure-docker.sh).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemon import free_port
from tests.support.git_server import Work, git

SSHD = "/usr/sbin/sshd"

_CONF = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_ed25519
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers {user}
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
"""


def keygen(path: Path, comment: str) -> Path:
    """An ed25519 key pair without passphrase at `path` (and `path`.pub); returns `path`."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True)  # fmt: skip
    return path


def public(key: Path) -> str:
    return Path(f"{key}.pub").read_text().strip()


@dataclass
class SshServer:
    root: Path
    port: int
    user: str
    deploy_key: Path  # authorized
    known_hosts: Path  # the real host key, as [127.0.0.1]:PORT

    def url(self, name: str = "deploy.git") -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.bare(name)}"

    def bare(self, name: str = "deploy.git") -> Path:
        return self.root / "repos" / name

    def create(self, name: str = "deploy.git") -> Path:
        path = self.bare(name)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
        return path

    def clone(self, dest: Path, name: str = "deploy.git") -> Work:
        """A developer's clone (through the file system: this side is the test's)."""
        subprocess.run(["git", "clone", "-q", str(self.bare(name)), str(dest)], check=True,
                       capture_output=True)  # fmt: skip
        git(dest, "config", "user.email", "dev@example.com")
        git(dest, "config", "user.name", "dev")
        return Work(dest)

    def log(self) -> str:
        return (self.root / "sshd.log").read_text(errors="replace")

    def known_hosts_line(self, key_pub: str) -> str:
        kind, blob = key_pub.split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"


@contextlib.contextmanager
def ssh_git_server(root: Path) -> Iterator[SshServer]:
    """sshd on 127.0.0.1:<free port> serving `root`/repos, until the block ends."""
    if not os.path.exists(SSHD):
        raise AssertionError("sshd missing: run `bash scripts/ensure-docker.sh` as root")
    (root / "repos").mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    host = keygen(root / "host_ed25519", "berth-test-host")
    deploy = keygen(root / "deploy_key", "berth-test-deploy")
    (root / "authorized_keys").write_text(public(deploy) + "\n")
    port, user = free_port(), getpass.getuser()
    (root / "sshd_config").write_text(_CONF.format(port=port, d=root, user=user))
    server = SshServer(root, port, user, deploy, root / "known_hosts")
    server.known_hosts.write_text(server.known_hosts_line(public(host)))
    with open(root / "sshd.log", "w") as log:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(root / "sshd_config"), "-p", str(port)],
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own group: the connections it forks die with it
        )
    try:
        _wait_up(server, proc)
        yield server
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_up(server: SshServer, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sshd exited {proc.returncode}: {server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"sshd never answered: {server.log()}")
