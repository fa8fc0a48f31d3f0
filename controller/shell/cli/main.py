"""`berth` command line: global options before the command (DESIGN §6).

argparse rather than click/typer: it is in the standard library, supports global options
before a sub-command natively, and types cleanly under mypy --strict.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from controller import __version__
from controller.errors import BerthError, ConfigError
from controller.shell.cli import commands as c
from controller.shell.cli import deploy_args, git_args
from controller.shell.wiring import Context


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="berth", description="Health-gated deployments for Docker hosts."
    )
    p.add_argument("--version", action="version", version=f"berth {__version__}")
    _global_options(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _commands(sub)
    deploy_args.register(sub)
    return p


def _global_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--desired",
        default=os.environ.get("BERTH_DESIRED", "./desired"),
        help="desired-state directory (env BERTH_DESIRED)",
    )
    p.add_argument(
        "--compose-root",
        default=os.environ.get("BERTH_COMPOSE_ROOT") or None,
        help="the operator's tree: compose files and all they bring in must lie here, "
        "outside desired/ (env BERTH_COMPOSE_ROOT; default: the directory holding desired/)",
    )
    p.add_argument(
        "--state-dir",
        default=os.environ.get("BERTH_STATE_DIR", "./.berth"),
        help="where the SQLite history lives (env BERTH_STATE_DIR)",
    )
    p.add_argument(
        "--docker-host",
        default=os.environ.get("DOCKER_HOST"),
        help="Docker engine address (default: DOCKER_HOST or the local socket)",
    )


def _commands(sub: Any) -> None:
    def cmd(name: str, help_: str, *, json_: bool = True) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
        if json_:
            sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    cmd("validate", "check desired/ and compose files (no Docker needed); exit 1 if invalid")
    cmd("plan", "show what would change; exit 0 nothing, 2 changes, 1 error")
    ap = cmd(
        "apply", "reconcile once and wait for every rollout; exit 0 converged, 3 rolled back/failed"
    )
    _notify_options(ap)
    cmd("status", "desired vs running tag, ready/desired replicas, last outcome")
    h = cmd("history", "past rollouts of a service (SERVICE or PROJECT/SERVICE)")
    h.add_argument("service")
    h.add_argument("--limit", type=int, default=20)
    run = cmd(
        "run",
        "the daemon: watch desired/, reconcile, serve /metrics; exits 0 on SIGTERM",
        json_=False,
    )
    run.add_argument(
        "--listen",
        default=os.environ.get("BERTH_LISTEN", "127.0.0.1:9180"),
        help="HTTP address for /metrics, /healthz, /readyz, /status",
    )
    run.add_argument("--resync", type=float, default=30.0, help="full resync period, seconds")
    run.add_argument(
        "--digest-interval",
        type=float,
        default=60.0,
        help="how often a tag is asked again for its digest (x-berth.track), seconds",
    )
    run.add_argument("--workers", type=int, default=8, help="rollouts in parallel")
    run.add_argument("--log-format", choices=("auto", "json", "human"), default="auto")
    git_args.register(run)
    _notify_options(run)
    ad = cmd(
        "adopt",
        "take over containers `docker compose up` started: replace them by a health-gated "
        "rollout (same volumes and networks); exit as apply",
    )
    ad.add_argument("project", nargs="*", help="projects to adopt (default: every project)")
    rt = cmd("retry", "lift the quarantine of a failed revision", json_=False)
    rt.add_argument("service")
    for name, help_ in CANARY_COMMANDS.items():
        cmd(name, help_, json_=False).add_argument("service")


def _notify_options(p: argparse.ArgumentParser) -> None:
    """Notifications (docs/notifications.md): Apprise URLs, repeatable; without the flag,
    BERTH_NOTIFY (space or comma separated)."""
    p.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help="send a notice per rollout outcome to this Apprise URL (repeatable; "
        "env BERTH_NOTIFY, space/comma separated)",
    )
    p.add_argument(
        "--notify-config",
        metavar="FILE",
        default=os.environ.get("BERTH_NOTIFY_CONFIG") or None,
        help="an Apprise config file of notification URLs (env BERTH_NOTIFY_CONFIG)",
    )


def _notify_targets(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """(origin, url): the flag wins over the variable, as for every option with an env."""
    if getattr(args, "notify", None):
        return tuple(("--notify", u) for u in args.notify)
    if not hasattr(args, "notify"):
        return ()
    env = os.environ.get("BERTH_NOTIFY", "").replace(",", " ").split()
    return tuple(("BERTH_NOTIFY", u) for u in env)


CANARY_COMMANDS = {
    "promote": "canary in progress: all traffic to the new revision now (skips the steps left)",
    "abort": "canary in progress: weight 0, roll back, quarantine the new revision",
    "pause": "canary in progress: hold the current step until promote, resume or abort",
    "resume": "paused canary: go on with its steps",
}


def entry() -> None:
    """The `berth` console script. Once a command has returned, its output flushed and its
    SQLite commits done, the process ends with os._exit: the interpreter's teardown
    (finalising every module and object) adds ~25 ms to each call and does nothing Berth
    needs. An exception escaping `main` still ends the normal way, with its traceback."""
    try:
        code = main()
    except BrokenPipeError:  # the reader went away (`berth history | head`): no traceback
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to tell anyone
            code = code or 1
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    ctx = Context(
        args.desired,
        args.state_dir,
        args.docker_host,
        args.compose_root,
        notify=_notify_targets(args),
        notify_config=getattr(args, "notify_config", None),
    )
    as_json = bool(getattr(args, "json", False))
    try:
        return _dispatch(ctx, args, as_json)
    except ConfigError as exc:
        return _invalid(exc, as_json=as_json and args.command == "validate")
    except BerthError as exc:
        print(f"berth: {exc}", file=sys.stderr)
        return c.EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _dispatch(ctx: Context, args: argparse.Namespace, as_json: bool) -> int:
    if args.command == "validate":
        return c.cmd_validate(ctx, as_json=as_json)
    if args.command == "plan":
        return c.cmd_plan(ctx, as_json=as_json)
    if args.command == "apply":
        return c.cmd_apply(ctx, as_json=as_json)
    if args.command == "adopt":
        from controller.shell.cli.adopt import cmd_adopt

        return cmd_adopt(ctx, args.project, as_json=as_json)
    if args.command == "status":
        return c.cmd_status(ctx, as_json=as_json)
    if args.command == "history":
        return c.cmd_history(ctx, args.service, as_json=as_json, limit=args.limit)
    if args.command == "run":
        return _run(ctx, args)
    if args.command in ("deploy", "rollback"):
        return deploy_args.dispatch(ctx, args)
    if args.command == "retry":
        return c.cmd_retry(ctx, args.service)
    if args.command in CANARY_COMMANDS:
        return c.cmd_canary(ctx, args.command, args.service)
    print(f"berth: unknown command {args.command}", file=sys.stderr)
    return c.EXIT_ERROR


def _run(ctx: Context, args: argparse.Namespace) -> int:
    """`berth run`: with --git-url, desired/ and the compose root are Berth's checkout;
    every other option of the command's Context is kept (--notify)."""
    from controller.shell.daemon import logs
    from controller.shell.daemon.manager import Daemon

    logs.setup(args.log_format)
    git = git_args.source(args)
    if git is not None:
        ctx = replace(ctx, desired=git.desired, compose_root=git.checkout, git=git)
    ctx = replace(ctx, digest_ttl=max(1.0, args.digest_interval))
    return Daemon(ctx, resync=args.resync, workers=args.workers).run(args.listen)


def _invalid(exc: ConfigError, *, as_json: bool) -> int:
    if as_json:
        c.out_json(
            {
                "valid": False,
                "problems": [
                    {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                    for p in exc.problems
                ],
            }
        )
    print("invalid configuration:", file=sys.stderr)
    for prob in exc.problems:
        print(f"  {prob}", file=sys.stderr)
    return c.EXIT_ERROR
