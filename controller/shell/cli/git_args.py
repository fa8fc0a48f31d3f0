"""`berth run --git-*` flags: follow a remote repository (docs/git-source.md, docs/cli.md).

Credentials are never taken from the command line (it is visible in `ps`): the HTTPS token
comes from the environment (BERTH_GIT_TOKEN, removed from Berth's own environment once read
so neither git's children nor compose interpolation can see it) or a file; the SSH deploy
key and the webhook secret from files."""

from __future__ import annotations

import argparse
import os

from controller.adapters.git_remote import Auth
from controller.core.gitsync import git_path, url_problem
from controller.errors import BerthError
from controller.shell.git_source import GitSource

TOKEN_ENV = "BERTH_GIT_TOKEN"
MAX_SECRET = 4096


def register(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group("remote git source (docs/git-source.md)")
    g.add_argument("--git-url", help="follow this repository (https://, ssh://, git@host:path)")
    g.add_argument("--git-branch", default="main", help="branch to follow (default main)")
    g.add_argument(
        "--git-path", default="desired", help="desired/ inside the repository (default desired)"
    )
    g.add_argument("--git-interval", type=float, default=60.0, help="poll period, seconds")
    g.add_argument("--git-checkout", help="Berth's own checkout (default STATE_DIR/git/checkout)")
    g.add_argument(
        "--git-token-file", help=f"HTTPS token (default: env {TOKEN_ENV}); never on the line"
    )
    g.add_argument(
        "--git-username", default="x-access-token", help="HTTPS user name sent with the token"
    )
    g.add_argument("--git-ssh-key", help="SSH deploy key (private key file)")
    g.add_argument("--git-known-hosts", help="known_hosts file for the SSH remote")
    g.add_argument(
        "--git-allowed-signers",
        help="ssh allowed-signers file: the new tip must verify (git verify-commit)",
    )
    g.add_argument(
        "--git-trust-repo",
        action="store_true",
        help="accept pushed changes outside --git-path (push access = operator access)",
    )
    g.add_argument(
        "--webhook-secret-file", help="enables POST /hooks/git (HMAC-SHA256 shared secret)"
    )
    g.add_argument(
        "--webhook-max-body", type=int, default=1024 * 1024, help="largest webhook body, bytes"
    )


def source(args: argparse.Namespace) -> GitSource | None:
    """The git source the flags describe, or None without --git-url; BerthError names the
    flag that cannot be used."""
    if not args.git_url:
        _no_git_flags(args)
        return None
    problem = url_problem(args.git_url)
    if problem is not None:
        raise BerthError(problem)
    try:
        path = git_path(args.git_path)
    except ValueError as exc:
        raise BerthError(str(exc)) from None
    if not args.git_interval > 0 or args.webhook_max_body < 1:
        raise BerthError("--git-interval and --webhook-max-body must be positive")
    auth = Auth(
        token=token(args.git_token_file),
        username=args.git_username,
        ssh_key=_file(args.git_ssh_key, "--git-ssh-key"),
        known_hosts=_file(args.git_known_hosts, "--git-known-hosts"),
        signers=_file(args.git_allowed_signers, "--git-allowed-signers"),
    )
    checkout = args.git_checkout or os.path.join(args.state_dir, "git", "checkout")
    secret = None
    if args.webhook_secret_file:
        secret = _secret(args.webhook_secret_file, "--webhook-secret-file").encode()
    return GitSource(
        url=args.git_url,
        branch=args.git_branch,
        path=path,
        interval=args.git_interval,
        checkout=os.path.abspath(checkout),
        auth=auth,
        trust_repo=args.git_trust_repo,
        webhook_secret=secret,
        max_body=args.webhook_max_body,
    )


def _no_git_flags(args: argparse.Namespace) -> None:
    given = [
        flag
        for flag, value in (
            ("--git-token-file", args.git_token_file),
            ("--git-ssh-key", args.git_ssh_key),
            ("--git-allowed-signers", args.git_allowed_signers),
            ("--webhook-secret-file", args.webhook_secret_file),
            ("--git-checkout", args.git_checkout),
        )
        if value
    ]
    if given:
        raise BerthError(f"{given[0]} needs --git-url")


def token(path: str | None) -> str | None:
    """The HTTPS token: from the file when given, else BERTH_GIT_TOKEN (taken out of the
    environment either way)."""
    env = os.environ.pop(TOKEN_ENV, None)  # from now on, nothing Berth starts inherits it
    if path:
        return _secret(path, "--git-token-file")
    return env.strip() if env and env.strip() else None


def _file(path: str | None, flag: str) -> str | None:
    if path is None:
        return None
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise BerthError(f"{flag} {path}: not a readable file")
    return full


def _secret(path: str, flag: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_SECRET + 1).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BerthError(f"{flag} {path}: cannot read ({type(exc).__name__})") from None
    if not text or len(text) > MAX_SECRET or "\n" in text:
        raise BerthError(f"{flag} {path}: must hold one non-empty line")
    return text
