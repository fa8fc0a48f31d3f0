"""Variable interpolation and `.env` parsing with Docker Compose's rules.

Operators know compose's `${VAR:-default}` syntax from their existing files, so Berth must
give identical results: `$$` is a literal dollar, `$VAR` and `${VAR}` substitute (unset
means empty, as compose does after a warning), `:-`/`-` default on unset-or-empty/unset,
`:?`/`?` fail on unset-or-empty/unset, `:+`/`+` substitute on set-and-non-empty/set.
Defaults may nest further interpolations. A `$` that starts no expression (`$5`, a regex's
trailing `$`) stays literal, as in compose; a malformed `${...}` is an error (compose's
"invalid template").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from controller.core.yamlsrc import Node, Path, dotted, map_nodes
from controller.errors import Problem, brief

Lookup = Callable[[str], str | None]

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")
MAX_NESTING = 16  # `${A:-${B:-...}}` levels; compose files use two or three
MAX_VALUE = 256 * 1024  # characters one value may grow to by substitution (`${A}${A}...`)
MAX_TOTAL = 4 * 1024 * 1024  # characters all substitutions of one file may add


def _quote(text: str) -> str:
    """A template as error messages show it: long ones cut, so a message stays one line."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


class InterpolationError(ValueError):
    """A template that compose would refuse, or a `${VAR?err}` whose variable is unset."""


def interpolate(text: str, lookup: Lookup, *, depth: int = 0) -> str:
    """Substitute every `$` expression in `text`; nesting is bounded (MAX_NESTING)."""
    if depth > MAX_NESTING:
        raise InterpolationError(
            f"invalid interpolation format in {_quote(text)}: "
            f"more than {MAX_NESTING} nested '${{...}}'"
        )
    out: list[str] = []
    size = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            size += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            value, i = _braced(text, i + 2, lookup, depth)
            out.append(value)
            size += len(value)
        else:
            match = _NAME.match(text, i + 1)
            if match is None:  # compose keeps a `$` that starts no expression ('^v\d+$')
                out.append("$")
                i += 1
                continue
            out.append(lookup(match.group()) or "")
            i = match.end()
            size += len(out[-1])
        if size > MAX_VALUE:
            raise InterpolationError(
                f"{_quote(text)} grows past {MAX_VALUE} characters when its variables are "
                "substituted"
            )
    return "".join(out)


def _closing(text: str, start: int) -> int:
    """Index of the `}` that closes a `${` whose body starts at `start` (nesting aware)."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"invalid interpolation format in {_quote(text)}: unclosed '${{'")


def _braced(text: str, start: int, lookup: Lookup, depth: int) -> tuple[str, int]:
    end = _closing(text, start)
    body = text[start:end]
    match = _NAME.match(body)
    if match is None:
        raise InterpolationError(
            f"invalid interpolation format in {_quote(text)}: bad name in '${{{body}}}'"
        )
    name = match.group()
    rest = body[match.end() :]
    value = lookup(name)
    if not rest:
        return value or "", end + 1
    op = next((o for o in _OPERATORS if rest.startswith(o)), None)
    if op is None:
        raise InterpolationError(f"invalid interpolation format in {_quote(text)}: '${{{body}}}'")
    arg = rest[len(op) :]
    unset = value is None
    empty = unset or value == ""
    missing = empty if op.startswith(":") else unset
    if op in (":-", "-"):
        result = interpolate(arg, lookup, depth=depth + 1) if missing else (value or "")
    elif op in (":?", "?"):
        if missing:
            why = interpolate(arg, lookup, depth=depth + 1) or "is not set"
            raise InterpolationError(f"required variable {name} is missing a value: {why}")
        result = value or ""
    else:
        result = "" if missing else interpolate(arg, lookup, depth=depth + 1)
    return result, end + 1


def interpolate_node(node: Node, lookup: Lookup) -> tuple[Node, list[Problem]]:
    """Interpolate every string scalar (not keys, as compose), collecting all errors."""
    problems: list[Problem] = []
    added = [0]  # characters substitution added to this file, for MAX_TOTAL

    def visit(n: Node, path: Path) -> Node:
        if not isinstance(n.value, str) or "$" not in n.value or added[0] > MAX_TOTAL:
            return n  # past MAX_TOTAL: reported once already, the file is invalid
        try:
            value = interpolate(n.value, lookup)
        except InterpolationError as exc:
            problems.append(Problem(n.file, n.line, dotted(path), str(exc)))
            return n
        added[0] += max(0, len(value) - len(n.value))
        if added[0] > MAX_TOTAL:
            why = f"substituted variables add more than {MAX_TOTAL} characters to this file"
            problems.append(Problem(n.file, n.line, dotted(path), why))
            return n
        return Node(value, n.file, n.line, n.tag)

    return map_nodes(node, visit), problems


# --- .env files -------------------------------------------------------------------------

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$$"}


class DotenvError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def parse_dotenv(text: str, *, environ: Mapping[str, str]) -> dict[str, str]:
    """Parse `.env` syntax: KEY=VALUE, `export`, quotes, comments, bare KEY.

    Unquoted and double-quoted values are interpolated against the file's earlier variables,
    then `environ`; single-quoted values are literal. A bare `KEY` takes its value from
    `environ` and is left out when unset, like compose.
    """
    result: dict[str, str] = {}
    read_dotenv(text, result, lookup=environ.get, env_first=False)
    return result


def read_dotenv(
    text: str, known: dict[str, str], *, lookup: Callable[[str], str | None], env_first: bool
) -> None:
    """The dotenv grammar into `known`. `${VAR}` is looked up in `lookup` and in what `known`
    holds so far: `lookup` first when `env_first` (compose-go's order for `env_file`), the
    file's own variables first otherwise (`.env`). A bare KEY takes `lookup`'s value."""

    def resolve(name: str) -> str | None:
        if env_first:
            found = lookup(name)
            return known.get(name) if found is None else found
        return known[name] if name in known else lookup(name)

    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    index = total = 0
    while index < len(lines):
        lineno, raw = index + 1, lines[index].strip()
        index += 1
        if not raw or raw.startswith("#"):
            continue
        if raw.startswith("export "):
            raw = raw[len("export ") :].lstrip()
        key, sep, rest = raw.partition("=")
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise DotenvError(lineno, f"invalid variable name {brief(_name_part(key))}")
        if not sep:
            if (value := lookup(key)) is not None:
                known[key] = value
            continue
        known[key], index = _dotenv_value(rest.lstrip(), lines, index, lineno, resolve)
        total += len(known[key])
        if total > MAX_TOTAL:
            raise DotenvError(lineno, f"values add up to more than {MAX_TOTAL} characters")


def _name_part(text: str) -> str:
    """What a malformed line means as a name: up to the first blank or ':', never the
    value after it (`DB_PASSWORD: hunter2` must not put the password in a log)."""
    name = re.split(r"[\s:]", text, maxsplit=1)[0]
    return name if name == text else name + "..."


def _dotenv_value(
    rest: str, lines: list[str], index: int, lineno: int, lookup: Lookup
) -> tuple[str, int]:
    if rest[:1] in ("'", '"'):
        quote = rest[0]
        found = _quoted(rest[1:], lines, index, quote)
        if found is None:
            raise DotenvError(lineno, f"unterminated {quote} quote")
        inner, index = found
        if quote == "'":
            return inner, index
        inner = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), inner)
        return _interp(inner, lookup, lineno), index
    comment = re.search(r"\s#", rest)
    if comment:
        rest = rest[: comment.start()]
    return _interp(rest.strip(), lookup, lineno), index


def _interp(value: str, lookup: Lookup, lineno: int) -> str:
    try:
        return interpolate(value, lookup)
    except InterpolationError as exc:
        raise DotenvError(lineno, str(exc)) from exc


def _close_at(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if quote == '"' and body[i] == "\\":
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _quoted(first: str, lines: list[str], index: int, quote: str) -> tuple[str, int] | None:
    """The body of a quoted value that may span lines, and the index after it; each line is
    scanned once (re-scanning the growing body was quadratic in the value's lines)."""
    parts: list[str] = []
    text = first
    while (end := _close_at(text, quote)) < 0:
        parts.append(text)
        if index >= len(lines):
            return None
        text = lines[index]
        index += 1
    parts.append(text[:end])
    return "\n".join(parts), index


class Substituted:
    """The lookup of interpolation, remembering the values it handed out: an error about a
    value that came from `.env` or the environment (`mem_limit: ${SECRET}`) must not print
    that value (a password in a log); messages are redacted before they leave."""

    MIN = 6  # shorter values ("80", "true") are too common to hide, and rarely secrets

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env, self.values = env, set[str]()

    def __call__(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is not None and len(value) >= self.MIN:
            self.values.add(value)
        return value

    def redact(self, problems: Sequence[Problem]) -> list[Problem]:
        out = []
        for p in problems:
            message = p.message
            for value in self.values:
                for shown_value in (value, brief(value)[1:-1]):
                    message = message.replace(shown_value, "***")
            out.append(Problem(p.file, p.line, p.field, message))
        return out
