"""ssh's refusals turned into one line that names the cause (git_remote.ssh_problem); the
texts are OpenSSH 9.2's, as the SSH integration tests see them from a real sshd."""

from __future__ import annotations

from controller.adapters.git_remote import Auth, ssh_problem

AUTH = Auth(ssh_key="/etc/berth/deploy_key", known_hosts="/etc/berth/known_hosts")

CHANGED = """@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
The fingerprint for the ED25519 key sent by the remote host is
SHA256:ewctM467F4VT2CKKLXaxPJz9TI/FNpO4yUf1AEQIRr4.
Host key for [git.example.com]:2222 has changed and you have requested strict checking.
Host key verification failed.
fatal: Could not read from remote repository.
"""


def test_changed_host_key() -> None:
    why = ssh_problem(CHANGED, AUTH)
    assert why is not None and why.startswith("ssh: the host key of [git.example.com]:2222")
    assert "SHA256:ewctM467F4VT2CKKLXaxPJz9TI/FNpO4yUf1AEQIRr4)" in why
    assert "--git-known-hosts /etc/berth/known_hosts" in why and "@" not in why


def test_unknown_host_and_refused_key() -> None:
    unknown = "No ED25519 host key is known for [h]:22 and you have requested strict checking."
    why = ssh_problem(unknown + "\nHost key verification failed.\n", AUTH)
    assert why is not None and "no host key is known for [h]:22" in why
    denied = "git@h: Permission denied (publickey).\nfatal: Could not read from remote"
    why = ssh_problem(denied, AUTH)
    assert why is not None and "Permission denied (publickey)" in why
    assert "the deploy key /etc/berth/deploy_key was refused" in why


def test_other_errors_are_left_to_git() -> None:
    assert ssh_problem("fatal: repository 'x' not found\n", AUTH) is None
    assert ssh_problem("", Auth()) is None
