"""`x-berth.allowed_tags`: a regular expression matched in linear time.

The pattern comes from the compose file and the tag from desired/, whose writers choose the
input; a backtracking engine (Python's `re`) takes exponential time on patterns like
`(a+)+$`, and one match would hold the interpreter (and the daemon's health endpoint) for
seconds. RE2 (Google's maintained binding, `google-re2`) guarantees time linear in the tag,
so a match cannot stall anything wherever it runs. It does not support backreferences or
lookaround; a pattern that needs them is refused when the compose file is validated.
Its `\\d` and `\\w` are ASCII, like the tag grammar itself.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

MAX_PATTERN = 1000  # characters; real patterns are a few dozen
_MAX_MEM = 8 << 20  # bytes RE2 may use to compile one pattern


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    import re2  # a C++ extension: loaded only where a pattern is used

    options = re2.Options()
    options.max_mem = _MAX_MEM
    options.log_errors = False  # RE2 would print to stderr; the error is reported instead
    return re2.compile(pattern, options)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be an allowed_tags expression; None when it can."""
    if len(pattern) > MAX_PATTERN:
        return f"regular expression longer than {MAX_PATTERN} characters"
    import re2

    try:
        _compiled(pattern)
    except re2.error as exc:
        why = exc.args[0] if exc.args else exc
        text = why.decode(errors="replace") if isinstance(why, bytes) else str(why)
        return f"invalid regular expression for RE2 (linear-time matching): {text}"
    return None


def compiled(pattern: str) -> Any:
    """The RE2 program of a pattern that passed `pattern_problem` (cached)."""
    return _compiled(pattern)


def tag_allowed(pattern: str, tag: str) -> bool:
    """The whole tag matches; call only with a pattern that passed `pattern_problem`."""
    return _compiled(pattern).fullmatch(tag) is not None
