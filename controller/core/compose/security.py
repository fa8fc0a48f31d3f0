"""`security_opt`: passed to the engine as written, except a seccomp profile file and
`systempaths=unconfined` (compose: empty MaskedPaths and ReadonlyPaths, not an option).

The Engine API takes a seccomp profile's JSON, not a path; `docker run` and compose read the
file on the client (compose v2: `security_opt: [seccomp=./profile.json]`). Berth does the
same, and the file is configuration like any other: it must lie inside the compose root and
outside desired/ (DESIGN §2), be a regular file and be JSON.
"""

from __future__ import annotations

import json
import math
import posixpath
from typing import Any

from controller.core.boundary import confine, shown
from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import want_str_list
from controller.core.yamlsrc import Path
from controller.errors import ConfigError

_BUILTIN = ("unconfined", "builtin")


def translate_security_opt(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    out: list[str] = []
    for i, item in enumerate(want_str_list(ctx.loc, path, value, allow_str=False) or []):
        name, sep, rest = item.partition("=") if "=" in item else item.partition(":")
        if item == "systempaths=unconfined":  # compose: no masked or read-only /proc paths
            body.host["MaskedPaths"], body.host["ReadonlyPaths"] = [], []
            continue
        if name != "seccomp" or not sep or rest in _BUILTIN or rest.lstrip().startswith("{"):
            out.append(item)
            continue
        profile = _profile(ctx, (*path, i), rest)
        if profile is not None:
            out.append(f"seccomp={profile}")
    body.host["SecurityOpt"] = out


def _profile(ctx: StackCtx, here: Path, file: str) -> str | None:
    full = posixpath.normpath(posixpath.join(ctx.project_dir, file))
    ctx.files_read.append(full)
    if (problem := confine(ctx.files, full)) is not None:
        ctx.loc.error(here, f"seccomp profile {shown(full)} {problem} (security boundary)")
        return None
    try:
        text = ctx.files.read_text(full)
    except FileNotFoundError:
        ctx.loc.error(here, f"seccomp profile {shown(full)} does not exist")
        return None
    except ConfigError as exc:
        why = "; ".join(p.message for p in exc.problems)
        ctx.loc.error(here, f"cannot read seccomp profile {shown(full)}: {why}")
        return None
    try:  # NaN and Infinity are not JSON (the engine would refuse what dumps makes of them)
        doc = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        ctx.loc.error(here, f"seccomp profile {shown(full)} is not JSON")
        return None
    if not isinstance(doc, dict):
        ctx.loc.error(here, f"seccomp profile {shown(full)} is not a JSON object")
        return None
    return json.dumps(doc, separators=(",", ":"))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400
        raise ValueError(f"{text} is out of range")
    return number
