"""`x-berth.release`, `x-berth.smoke` and `x-berth.hooks` (DESIGN §3): the rollout's own work.

They come from the compose file only (the operator's): desired/ cannot add a command or a
URL (core/desired.py accepts tags and replica counts). Every value that reaches a request
line, a header, a regular expression or a process is checked here, with its file, line and
field, so that nothing malformed reaches the executor.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from controller.core.compose.fields import (
    check_keys,
    want_bool,
    want_command,
    want_duration,
    want_int,
    want_map,
    want_str,
)
from controller.core.options import ProbeSpec, UpstreamSpec
from controller.core.tagpolicy import pattern_problem
from controller.core.task_options import (
    HOOK_EVENTS,
    HookSpec,
    HooksSpec,
    ReleaseTask,
    SmokeCheck,
)
from controller.core.yamlsrc import Located, Path
from controller.errors import brief

# RFC 3986 path (and query) characters: written into a request line, so CR, LF and spaces
# would let the compose file inject headers or a second request.
URL_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]{0,1023}")
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")  # RFC 3986, nothing else
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")  # an HTTP header name (RFC 9110)
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]{0,4096}")  # no CR, LF, NUL or controls
_OWN_HEADERS = ("host", "content-length", "transfer-encoding", "connection")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_RELEASE_KEYS = ("name", "command", "timeout")
_SMOKE_KEYS = (
    "name",
    "path",
    "method",
    "port",
    "headers",
    "body",
    "status",
    "body_matches",
    "response_headers",
    "timeout",
    "when",
)
_HOOK_KEYS = ("command", "url", "timeout", "required")
MAX_RELEASE = 20
MAX_SMOKE = 50
MAX_HOOKS = 10  # per event
MAX_HEADERS = 50  # per map: request headers, response headers
MAX_BODY = 64 * 1024  # characters of a smoke check's request body
MAX_RELEASE_TIMEOUT = 24 * 3600.0
MAX_SMOKE_TIMEOUT = 300.0
MAX_HOOK_TIMEOUT = 3600.0


def _items(loc: Located, path: Path, value: Any, limit: int) -> list[tuple[Path, dict[str, Any]]]:
    if not isinstance(value, list):
        loc.error(path, f"must be a list of mappings, got {brief(value)}")
        return []
    if len(value) > limit:
        loc.error(path, f"at most {limit} entries, got {len(value)}")
        return []
    out = []
    for i, item in enumerate(value):
        spec = want_map(loc, (*path, i), item)
        if spec is not None:
            out.append(((*path, i), spec))
    return out


def _timeout(loc: Located, path: Path, spec: dict[str, Any], default: float, most: float) -> float:
    if spec.get("timeout") is None:
        return default
    seconds = want_duration(loc, (*path, "timeout"), spec["timeout"])
    if seconds is None:
        return default
    if not 0 < seconds <= most:
        loc.error((*path, "timeout"), f"must be greater than 0 and at most {most:g}s")
        return default
    return seconds


def _name(loc: Located, path: Path, spec: dict[str, Any], default: str, seen: set[str]) -> str:
    name = default
    if spec.get("name") is not None:
        given = want_str(loc, (*path, "name"), spec["name"])
        if given is not None and not _NAME.fullmatch(given):
            why = "must be 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit"
            loc.error((*path, "name"), why)
        elif given is not None:
            name = given
    if name in seen:
        loc.error((*path, "name"), f"{brief(name)} is used twice")
    seen.add(name)
    return name


def release_tasks(loc: Located, path: Path, value: Any) -> tuple[ReleaseTask, ...]:
    """`x-berth.release`: one-off commands run once per revision before its containers."""
    out: list[ReleaseTask] = []
    seen: set[str] = set()
    for here, spec in _items(loc, path, value, MAX_RELEASE):
        check_keys(loc, here, spec, _RELEASE_KEYS)
        name = _name(loc, here, spec, f"release-{len(out) + 1}", seen)
        if spec.get("command") is None:
            loc.error(here, "needs 'command' (what to run with the new image)")
            continue
        command = want_command(loc, (*here, "command"), spec["command"])
        if command is not None and not command:
            loc.error((*here, "command"), "must not be empty")
        timeout = _timeout(loc, here, spec, 300.0, MAX_RELEASE_TIMEOUT)
        if command:
            out.append(ReleaseTask(name=name, command=command, timeout=timeout))
    return tuple(out)


def smoke_checks(
    loc: Located,
    path: Path,
    value: Any,
    *,
    health: ProbeSpec | None,
    upstream: UpstreamSpec | None,
    bake: float,
) -> tuple[SmokeCheck, ...]:
    """`x-berth.smoke`: HTTP checks of each new container before the cut-over (and/or in
    the bake)."""
    out: list[SmokeCheck] = []
    seen: set[str] = set()
    default_port = health.port if health else upstream.port if upstream else None
    for here, spec in _items(loc, path, value, MAX_SMOKE):
        check_keys(loc, here, spec, _SMOKE_KEYS)
        name = _name(loc, here, spec, f"smoke-{len(out) + 1}", seen)
        check = _smoke(loc, here, spec, name, default_port)
        if check is not None and check.bake and bake <= 0:
            loc.error((*here, "when"), f"{check.when!r} needs x-berth.bake greater than 0")
        elif check is not None:
            out.append(check)
    return tuple(out)


def _smoke(
    loc: Located, path: Path, spec: dict[str, Any], name: str, default_port: int | None
) -> SmokeCheck | None:
    kw: dict[str, Any] = {"name": name}
    ok = True
    raw = want_str(loc, (*path, "path"), spec.get("path")) if "path" in spec else None
    if "path" not in spec:
        loc.error(path, "needs 'path' (what to request, e.g. /health)")
    if raw is not None and not URL_PATH.fullmatch(raw):
        loc.error((*path, "path"), "must start with '/' and be at most 1024 URL characters")
        raw = None
    ok &= raw is not None
    kw["path"] = raw
    port = default_port
    if spec.get("port") is not None:
        port = want_int(loc, (*path, "port"), spec["port"], minimum=1, maximum=65535)
    elif port is None:
        loc.error(path, "needs 'port' (the service has neither health nor upstream)")
    ok &= port is not None
    kw["port"] = port
    method = str(spec.get("method", "GET"))
    if method.upper() not in METHODS:
        loc.error(
            (*path, "method"), f"{brief(spec.get('method'))} is not one of {', '.join(METHODS)}"
        )
        ok = False
    kw["method"] = method.upper()
    ok &= _smoke_request(loc, path, spec, kw)
    ok &= _smoke_expect(loc, path, spec, kw)
    kw["timeout"] = _timeout(loc, path, spec, 5.0, MAX_SMOKE_TIMEOUT)
    when = spec.get("when", "before")
    if when not in ("before", "bake", "both"):
        loc.error((*path, "when"), f"{brief(when)} is not one of before, bake, both")
        ok = False
    kw["when"] = when
    return SmokeCheck(**kw) if ok else None


def _headers(loc: Located, path: Path, value: Any, *, request: bool) -> list[tuple[str, str]]:
    spec = want_map(loc, path, value)
    if spec is None:
        return []
    if len(spec) > MAX_HEADERS:
        loc.error(path, f"at most {MAX_HEADERS} headers, got {len(spec)}")
        return []
    out = []
    for key, raw in spec.items():
        text = want_str(loc, (*path, key), raw)
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            loc.error((*path, key), "is not an HTTP header name")
        elif request and key.lower() in _OWN_HEADERS:
            loc.error((*path, key), f"is set by Berth ({', '.join(_OWN_HEADERS)} are)")
        elif text is not None and request and not _HEADER_VALUE.fullmatch(text):
            loc.error((*path, key), "must be at most 4096 characters, without line breaks")
        elif text is not None and not request and (why := pattern_problem(text)):
            loc.error((*path, key), why)
        elif text is not None:
            out.append((key if request else key.lower(), text))
    return out


def _smoke_request(loc: Located, path: Path, spec: dict[str, Any], kw: dict[str, Any]) -> bool:
    before = len(loc.problems)
    if spec.get("headers") is not None:
        kw["headers"] = tuple(_headers(loc, (*path, "headers"), spec["headers"], request=True))
    if spec.get("body") is not None:
        body = want_str(loc, (*path, "body"), spec["body"])
        if body is not None and len(body) > MAX_BODY:
            loc.error((*path, "body"), f"at most {MAX_BODY} characters")
        kw["body"] = body
    return len(loc.problems) == before


def _smoke_expect(loc: Located, path: Path, spec: dict[str, Any], kw: dict[str, Any]) -> bool:
    before = len(loc.problems)
    if "status" in spec:
        raw = spec["status"]
        items = raw if isinstance(raw, list) else [raw]
        if not items or len(items) > 20:  # checked first: a huge list is not walked
            loc.error((*path, "status"), "one status code, or a list of 1 to 20")
            items = []
        codes = [want_int(loc, (*path, "status"), c, minimum=100, maximum=599) for c in items]
        kw["status"] = tuple(c for c in codes if c is not None)
    if spec.get("body_matches") is not None:
        pattern = want_str(loc, (*path, "body_matches"), spec["body_matches"])
        if pattern is not None and (why := pattern_problem(pattern)):
            loc.error((*path, "body_matches"), why)
        kw["body_matches"] = pattern
    if spec.get("response_headers") is not None:
        here = (*path, "response_headers")
        kw["response_headers"] = tuple(_headers(loc, here, spec["response_headers"], request=False))
    return len(loc.problems) == before


def hooks_spec(loc: Located, path: Path, value: Any) -> HooksSpec:
    """`x-berth.hooks`: {start, success, rollback: [hook...]}."""
    spec = want_map(loc, path, value)
    if spec is None:
        return HooksSpec()
    check_keys(loc, path, spec, HOOK_EVENTS)
    kw: dict[str, tuple[HookSpec, ...]] = {}
    for event in HOOK_EVENTS:
        if spec.get(event) is None:
            continue
        hooks = []
        for here, item in _items(loc, (*path, event), spec[event], MAX_HOOKS):
            hook = _hook(loc, here, item, start=event == "start")
            if hook is not None:
                hooks.append(hook)
        kw[event] = tuple(hooks)
    return HooksSpec(**kw)


def _hook(loc: Located, path: Path, spec: dict[str, Any], *, start: bool) -> HookSpec | None:
    check_keys(loc, path, spec, _HOOK_KEYS)
    has_cmd, has_url = spec.get("command") is not None, spec.get("url") is not None
    if has_cmd == has_url:
        loc.error(path, "needs exactly one of 'command' (run on Berth's host) or 'url' (POST)")
        return None
    command = url = None
    if has_cmd:
        command = want_command(loc, (*path, "command"), spec["command"])
        if command is not None and not command:
            loc.error((*path, "command"), "must not be empty")
        if not command:
            return None
    else:
        url = _url(loc, (*path, "url"), spec["url"])
        if url is None:
            return None
    required = False
    if spec.get("required") is not None:
        required = bool(want_bool(loc, (*path, "required"), spec["required"]))
        if required and not start:
            why = "only a start hook can be required: success and rollback come after the fact"
            loc.error((*path, "required"), why)
    timeout = _timeout(loc, path, spec, 30.0, MAX_HOOK_TIMEOUT)
    return HookSpec(command=command, url=url, timeout=timeout, required=required)


def _url(loc: Located, path: Path, value: Any) -> str | None:
    text = want_str(loc, path, value)
    if text is None:
        return None
    parts = urllib.parse.urlsplit(text) if len(text) <= 2048 else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or not _URL_CHARS.fullmatch(text)
    ):
        loc.error(path, "must be an http:// or https:// URL of at most 2048 characters")
        return None
    return text
