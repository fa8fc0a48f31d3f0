"""`berth deploy` and `berth rollback` on the command line: their flags, and the call into
controller.shell.cli.deploy, which does the work."""

from __future__ import annotations

import argparse
from typing import Any

from controller.shell.cli import git_args
from controller.shell.cli.deploy import DEFAULT_CONTROLLER, cmd_deploy, cmd_rollback
from controller.shell.desired_edit import DeployError
from controller.shell.wiring import Context


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--commit", action="store_true", help="git commit the edit of desired/")
    sp.add_argument("--message", "-m", help="commit message subject (default: what changed)")
    sp.add_argument(
        "--wait",
        action="store_true",
        help="wait for the outcome: exit 0 converged, 3 rolled back/failed, 1 error",
    )
    sp.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (600)")
    sp.add_argument(
        "--controller",
        default=DEFAULT_CONTROLLER,
        help=f"daemon URL polled by --wait (default {DEFAULT_CONTROLLER}); "
        "without a daemon there, --wait reconciles once in-process",
    )
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument(
        "--git-token-file",
        help="desired/ is Berth's checkout of an HTTPS remote: the token to push with "
        "(default: env BERTH_GIT_TOKEN); never on the command line",
    )


def register(sub: Any) -> None:
    """Adds `deploy` and `rollback` to the `berth` sub-command parsers."""
    help_ = "write TAG for SERVICE(s) (or all) into desired/; --commit, --wait (exit like apply)"
    d = sub.add_parser("deploy", help=help_, description=help_)
    d.add_argument(
        "services",
        nargs="+",
        metavar="SERVICE",
        help="SERVICE, PROJECT/SERVICE (several allowed) or 'all'",
    )
    d.add_argument("--tag", required=True, help="tag, tag@sha256:... or sha256:... digest")
    d.add_argument("--project", help="with 'all': only this project")
    _common(d)
    help_ = "write the last good tag of SERVICE (from history) into desired/"
    r = sub.add_parser("rollback", help=help_, description=help_)
    r.add_argument("service", metavar="SERVICE", help="SERVICE or PROJECT/SERVICE")
    _common(r)


def dispatch(ctx: Context, args: argparse.Namespace) -> int:
    """Runs `deploy`/`rollback` from parsed arguments (called by cli.main)."""
    common: dict[str, Any] = {
        "commit": args.commit,
        "wait": args.wait,
        "timeout": args.timeout,
        "as_json": args.json,
        "message": args.message,
        "controller": args.controller,
        "git_token": git_args.token(args.git_token_file),
    }
    try:
        if args.command == "deploy":
            return cmd_deploy(ctx, args.services, args.tag, project=args.project, **common)
        return cmd_rollback(ctx, args.service, **common)
    except OSError as exc:  # a write refused (full disk, immutable file): already undone
        where = f" {exc.filename}" if exc.filename else ""
        raise DeployError(
            f"cannot write{where}: {exc.strerror or exc}; desired/ left unchanged"
        ) from exc
