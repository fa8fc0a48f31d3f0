"""`env_file` and `environment` -> Env, in compose-go's order.

compose-go (types.Project.WithServicesEnvironmentResolved): a bare `KEY` of `environment`
takes the project environment's value; each env_file is read with `${VAR}` looked up in
the project environment first, then the service's `environment`, and only then in what
the env files defined so far; `environment` finally overrides the files. A bare `KEY`
that is unset everywhere stays a bare `KEY` in Env, as compose sends it. `format: raw` is
docker's `--env-file` syntax (docker/cli kvfile): `KEY=VALUE` taken as written.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

from controller.core.boundary import confine, shown
from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import check_keys, kv_pairs, want_bool, want_str
from controller.core.compose.interpolate import DotenvError, read_dotenv
from controller.core.yamlsrc import Path
from controller.errors import ConfigError, Problem, brief

Lookup = Callable[[str], str | None]
_ENV_NAME = re.compile(r"[^=\s\x00]+")  # what a process environment allows as a name
MAX_ENV_ENTRY = 128 * 1024  # Linux MAX_ARG_STRLEN: execve refuses a longer KEY=VALUE
MAX_ENV_SERVICE = 1024 * 1024  # ARG_MAX is 2 MiB for environment and arguments together


def _entries(ctx: StackCtx, path: Path, value: Any) -> list[tuple[Path, str, bool, bool]]:
    """(where, file, required, raw) of each env_file item."""
    entries: list[tuple[Path, str, bool, bool]] = []
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        here = (*path, i) if isinstance(value, list) else path
        if isinstance(item, dict):
            check_keys(ctx.loc, here, item, ("path", "required", "format"))
            file = want_str(ctx.loc, (*here, "path"), item.get("path"))
            required = want_bool(ctx.loc, (*here, "required"), item.get("required", True))
            fmt = item.get("format")
            if fmt is not None and fmt != "raw":
                ctx.loc.error((*here, "format"), f"unknown format {brief(fmt)}; only 'raw'")
                continue
            if file is not None:
                entries.append((here, file, required is not False, fmt == "raw"))
        elif (file := want_str(ctx.loc, here, item)) is not None:
            entries.append((here, file, True, False))
    return entries


def _read(ctx: StackCtx, here: Path, file: str, required: bool) -> tuple[str, str] | None:
    full = posixpath.normpath(posixpath.join(ctx.project_dir, file))
    ctx.files_read.append(full)
    if (problem := confine(ctx.files, full)) is not None:
        ctx.loc.error(here, f"env_file {shown(full)} {problem} (security boundary)")
        return None
    try:
        return full, ctx.files.read_text(full)
    except FileNotFoundError:
        if required:
            ctx.loc.error(here, f"env_file {full} does not exist")
    except ConfigError as exc:
        why = "; ".join(p.message for p in exc.problems)
        ctx.loc.error(here, f"cannot read env_file {full}: {why}")
    return None


def _env_files(
    ctx: StackCtx, path: Path, value: Any, inline: dict[str, str | None]
) -> dict[str, str]:
    """The env files' variables; `inline` is the service's `environment` (bare keys
    already resolved), which the files' `${VAR}` see after the project environment."""
    result: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        if name in ctx.env:
            return ctx.env[name]
        return inline.get(name)

    for here, file, required, raw in _entries(ctx, path, value):
        found = _read(ctx, here, file, required)
        if found is None:
            continue
        full, text = found
        if raw:
            result.update(_raw_env(ctx, full, text, lookup))
            continue
        try:
            parse_env_file(text, lookup, result)
        except DotenvError as exc:
            ctx.loc.problems.append(Problem(full, exc.line, "", str(exc)))
    return result


def parse_env_file(text: str, lookup: Lookup, known: dict[str, str]) -> None:
    """Dotenv syntax into `known`, with compose-go's lookup order for `${VAR}`: `lookup`
    (the project environment, then the service's `environment`) before the variables the
    env files defined so far."""
    read_dotenv(text, known, lookup=lookup, env_first=True)


def _raw_env(ctx: StackCtx, file: str, text: str, lookup: Lookup) -> dict[str, str]:
    """`format: raw` (docker/cli kvfile): leading blanks dropped, `#` lines and blank
    lines skipped, `KEY=VALUE` taken as written (no quotes, no `$`, trailing blanks kept);
    a bare `KEY` is looked up and left out when unset."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, val = line.partition("=")
        if not key or not _ENV_NAME.fullmatch(key):
            ctx.loc.problems.append(Problem(file, n, "", "expected KEY=VALUE or KEY"))
            continue
        if eq:
            out[key] = val
        elif (found := lookup(key)) is not None:
            out[key] = found
    return out


def translate_environment(ctx: StackCtx, svc: dict[str, Any], path: Path, body: Body) -> None:
    """Sizes are checked before any KEY=VALUE string is built: a value named by many
    services (a bare KEY, a shared env_file) is otherwise copied once per service, and a
    small `.env` that doubles a value could make gigabytes of copies (hostile input)."""
    inline: dict[str, str | None] = {}
    where: Path = (*path, "environment")
    if svc.get("environment") is not None:
        pairs = kv_pairs(ctx.loc, (*path, "environment"), svc["environment"]) or {}
        inline = {k: ctx.env.get(k) if v is None else v for k, v in pairs.items()}
    env: dict[str, str | None] = {}
    if svc.get("env_file") is not None:
        env.update(_env_files(ctx, (*path, "env_file"), svc["env_file"], inline))
        if "environment" not in svc:
            where = (*path, "env_file")
    env.update(inline)
    if env and _env_fits(ctx, where, env):
        body.top["Env"] = [k if v is None else f"{k}={v}" for k, v in env.items()]


def _env_fits(ctx: StackCtx, where: Path, env: dict[str, str | None]) -> bool:
    total = 0
    for key, val in env.items():
        if not _ENV_NAME.fullmatch(key):
            ctx.loc.error(where, f"invalid variable name {brief(key)}")
            return False
        size = len(key) + 1 + len(val or "")
        if size > MAX_ENV_ENTRY:
            why = f"{brief(key)} is {size} characters; a process cannot get more than 128 KiB"
            ctx.loc.error(where, why)
            return False
        if "\x00" in (val or ""):
            ctx.loc.error(where, f"the value of {brief(key)} contains a NUL character")
            return False
        total += size
    if total > MAX_ENV_SERVICE:
        ctx.loc.error(where, f"the environment is {total} characters; at most 1 MiB")
        return False
    return ctx.budget.spend(total, ctx.loc, where)
