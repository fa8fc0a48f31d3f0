"""`platform`, `pull_policy` and `runtime`: how the image is fetched and run.

`platform` and `pull_policy` are not create-body fields: they ride on ServiceSpec and the
shell uses them (platform for the pull and the create, the policy to decide whether to
pull). `runtime` is HostConfig.Runtime, as compose sends it.
"""

from __future__ import annotations

import re
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import want_str
from controller.core.yamlsrc import Path
from controller.errors import brief

PULL_POLICIES = ("always", "never", "missing", "if_not_present", "build", "daily", "weekly")
_EVERY = re.compile(r"every_((?:[0-9]{1,6}[wdhms]){1,5})")
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
# os[/arch[/variant]], as containerd's platforms.Parse reads it (lower case after parsing)
_PLATFORM = re.compile(r"[A-Za-z0-9_-]{1,32}(/[A-Za-z0-9_-]{1,32}){0,2}")
_RUNTIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def pull_interval(policy: str) -> float | None:
    """Seconds between pulls for the refresh policies (daily, weekly, every_<duration>),
    None for the others. compose: these are "refresh" = pull when the last pull is older."""
    if policy == "daily":
        return 86400.0
    if policy == "weekly":
        return 604800.0
    match = _EVERY.fullmatch(policy)
    if match is None:
        return None
    return float(sum(int(n) * _UNIT[u] for n, u in re.findall(r"([0-9]+)([wdhms])", policy)))


def translate_pull_policy(ctx: StackCtx, path: Path, value: Any) -> str | None:
    text = want_str(ctx.loc, path, value)
    if text is None:
        return None
    if text in PULL_POLICIES:
        return text
    if _EVERY.fullmatch(text) and pull_interval(text):
        return text
    why = f"{brief(text)} is not one of {', '.join(PULL_POLICIES)} or every_<duration>"
    if text == "refresh":
        why = "'refresh' is not supported: use daily, weekly or every_<duration>"
    ctx.loc.error(path, why)
    return None


def translate_platform(ctx: StackCtx, path: Path, value: Any) -> str | None:
    text = want_str(ctx.loc, path, value)
    if text is not None and not _PLATFORM.fullmatch(text):
        ctx.loc.error(path, f"{brief(text)} is not a platform such as linux/amd64")
        return None
    return None if text is None else text.lower()


def translate_runtime(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    text = want_str(ctx.loc, path, value)
    if text is not None and not _RUNTIME.fullmatch(text):
        ctx.loc.error(path, f"{brief(text)} is not a runtime name such as runc or nvidia")
        return
    if text is not None:
        body.host["Runtime"] = text
