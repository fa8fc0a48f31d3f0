"""The git syncer over SSH against a real OpenSSH sshd (tests/support/ssh_server.py): a
clone and a fast-forward with the deploy key; a key the server does not know and a host
key that does not match --git-known-hosts refused with a clear error, the checkout left
where it was; a push over SSH with what `berth run` recorded in the checkout; the private
key's contents nowhere (its path may show); sshd gone after."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters import git_remote as g
from controller.adapters import git_writeback as gw
from controller.adapters.git_remote import Auth
from controller.core.gitsync import SyncResult
from controller.shell.git_source import GitSource
from tests.integration.test_git_source import DESIRED, Synced
from tests.support.git_server import Work, git
from tests.support.ssh_server import SshServer, keygen, public, ssh_git_server


@pytest.fixture()
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    with ssh_git_server(tmp_path / "sshd") as s:
        yield s


@pytest.fixture()
def work(sshd: SshServer, tmp_path: Path) -> Work:
    sshd.create()
    w = sshd.clone(tmp_path / "dev")
    w.write("desired/app.yaml", DESIRED % "1.0.0")
    w.write("compose/c.yml", "services: {api: {image: app}}\n")
    w.commit("initial")
    w.push()
    return w


def source(sshd: SshServer, tmp_path: Path, *, key: Path | None = None,
           known_hosts: Path | None = None) -> GitSource:  # fmt: skip
    auth = Auth(ssh_key=str(key or sshd.deploy_key),
                known_hosts=str(known_hosts or sshd.known_hosts))  # fmt: skip
    return GitSource(url=sshd.url(), branch="main", path="desired", interval=60,
                     checkout=str(tmp_path / "state" / "git" / "checkout"), auth=auth)  # fmt: skip


def key_body(key: Path) -> list[str]:
    """The base64 lines of a private key file: what must never leave it."""
    return [ln for ln in key.read_text().splitlines() if ln and not ln.startswith("-----")]


def test_clone_and_fast_forward_with_the_deploy_key(
    sshd: SshServer, work: Work, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    src = source(sshd, tmp_path)
    s = Synced(src)
    s.sync.prepare()
    checkout = Path(src.checkout)
    assert (checkout / "desired" / "app.yaml").read_text() == DESIRED % "1.0.0"
    work.write("desired/app.yaml", DESIRED % "2.0.0")
    new = work.commit("api 2.0.0")
    work.push()
    out = s.sync.sync_once()
    assert (out.result, out.commit, out.changed) == (SyncResult.SUCCESS, new, True), out
    assert (checkout / "desired" / "app.yaml").read_text() == DESIRED % "2.0.0"
    assert s.sync.status()["url"] == sshd.url().replace(f"{sshd.user}@", "")  # user info dropped
    # it really went through sshd with the deploy key
    fingerprint = _fingerprint(sshd.deploy_key)
    assert f"Accepted publickey for {sshd.user}" in sshd.log() and fingerprint in sshd.log()
    for line in key_body(sshd.deploy_key):
        assert line not in caplog.text and line not in json.dumps(s.sync.status())
        assert line not in (checkout / ".git" / "config").read_text()


def test_a_key_the_server_does_not_know_is_refused(
    sshd: SshServer, work: Work, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = source(sshd, tmp_path)
    Synced(src).sync.prepare()
    good = work.head()
    work.write("desired/app.yaml", DESIRED % "2.0.0")
    work.commit("api 2.0.0")
    work.push()
    caplog.set_level(logging.DEBUG)
    wrong = keygen(tmp_path / "wrong_key", "not-authorized")
    s = Synced(source(sshd, tmp_path, key=wrong))
    out = s.sync.sync_once()
    assert out.result is SyncResult.ERROR and out.commit == good
    assert out.error is not None and "Permission denied (publickey)" in out.error, out.error
    assert "deploy key" in out.error
    assert g.head(src.remote, src.checkout) == good
    assert (Path(src.checkout) / "desired" / "app.yaml").read_text() == DESIRED % "1.0.0"
    for line in key_body(wrong):
        assert line not in out.error and line not in caplog.text
        assert line not in json.dumps(s.sync.status())


def test_a_host_key_not_in_known_hosts_is_refused(
    sshd: SshServer, work: Work, tmp_path: Path
) -> None:
    src = source(sshd, tmp_path)
    Synced(src).sync.prepare()
    good = work.head()
    work.write("desired/app.yaml", DESIRED % "2.0.0")
    work.commit("api 2.0.0")
    work.push()
    # a man in the middle: known_hosts pins another key for [127.0.0.1]:PORT
    other = keygen(tmp_path / "other_host", "other-host")
    pinned = tmp_path / "known_hosts.other"
    pinned.write_text(sshd.known_hosts_line(public(other)))
    s = Synced(source(sshd, tmp_path, known_hosts=pinned))
    out = s.sync.sync_once()
    assert out.result is SyncResult.ERROR and out.commit == good
    assert out.error is not None and "host key" in out.error, out.error
    assert f"[127.0.0.1]:{sshd.port}" in out.error and str(pinned) in out.error
    assert "@@@" not in out.error  # the banner is not the message
    assert (Path(src.checkout) / "desired" / "app.yaml").read_text() == DESIRED % "1.0.0"
    # an empty known_hosts: the host is unknown, never accepted on first use
    pinned.write_text("")
    out = Synced(source(sshd, tmp_path, known_hosts=pinned)).sync.sync_once()
    assert out.result is SyncResult.ERROR and out.error is not None
    assert "host key" in out.error and "known" in out.error, out.error


def test_sshd_is_gone_after_the_fixture(tmp_path: Path) -> None:
    with ssh_git_server(tmp_path / "sshd") as s:
        pid = int((s.root / "sshd.pid").read_text())
        port = s.port
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def _fingerprint(key: Path) -> str:
    import subprocess

    out = subprocess.run(["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return out.stdout.split()[1]


def test_push_over_ssh_with_what_the_checkout_recorded(
    sshd: SshServer, work: Work, tmp_path: Path
) -> None:
    src = source(sshd, tmp_path)
    Synced(src).sync.prepare()
    followed = gw.followed(str(Path(src.checkout) / "desired"))
    assert followed is not None  # berth run recorded the remote: paths only
    assert (followed.url, followed.branch, followed.path) == (sshd.url(), "main", "desired")
    assert (followed.ssh_key, followed.known_hosts) == (str(sshd.deploy_key),
                                                       str(sshd.known_hosts))  # fmt: skip
    text = (DESIRED % "3.0.0").encode()
    head, sha = gw.commit_files(followed.top, {"desired/app.yaml": text}, "berth deploy")
    assert g.head(src.remote, src.checkout) == head  # the checkout did not move
    g.push(followed.remote(None), followed.top, sha)
    assert git(sshd.bare(), "rev-parse", "main") == sha
    assert git(sshd.bare(), "show", "main:desired/app.yaml") + "\n" == text.decode()
