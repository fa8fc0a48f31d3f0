"""Limits a YAML event stream must keep before a document is built from it.

Input is hostile (desired/ has many writers), and building a document is where a small
file turns into gigabytes (alias bombs, of many values or of long strings), recursion
(deep nesting, an alias inside its own anchor) or a crash (a mapping or sequence used as
a key, an integer of thousands of digits). So the events are checked one at a time and the
first one past a limit is a located error; the check stops there, which bounds its own
cost too (ruamel's parser slows down quadratically with depth).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
)

from controller.errors import ConfigError, brief

MAX_DEPTH = 64  # compose files nest about 6 deep; 64 leaves room and stays fast to parse
MAX_NODES = 50_000  # after alias expansion; a 300-service compose file has ~15,000
MAX_CHARS = 1 << 20  # scalar characters after alias expansion (files are 256 KiB at most)
MAX_NUMBER = 30  # characters of a plain integer: int64 needs 19 digits (or 0x + 16)
# Explicit core tags that mean "as written": a string, a mapping, a sequence. `!!int` and
# friends are refused: they would turn '١٢' (Arabic-Indic digits) into a number.
_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "map", "seq")) | {"!"}
# what YAML 1.2 reads as an integer (a 40-character git SHA is text, not hex)
_INTEGER = re.compile(r"[-+]?(?:0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+|[0-9_]+)")


@dataclass
class _Open:
    """A collection being read: its anchor, kind and what it holds so far (expanded)."""

    anchor: str | None
    mapping: bool
    nodes: int = 1
    chars: int = 0
    children: int = 0


@dataclass(frozen=True)
class _Size:
    nodes: int
    chars: int
    collection: bool


class _Shape:
    def __init__(self, file: str, tags: frozenset[str]) -> None:
        self.file, self.tags = file, tags
        self.open: list[_Open] = []
        self.anchors: dict[str, _Size] = {}

    def fail(self, event: Event, message: str) -> ConfigError:
        mark = event.start_mark
        line = int(mark.line) + 1 if mark is not None else None
        return ConfigError.one(self.file, line, "", message)

    def _at_key(self) -> bool:
        return bool(self.open) and self.open[-1].mapping and self.open[-1].children % 2 == 0

    def _add(self, event: Event, size: _Size) -> None:
        """A finished node joins its parent collection; the totals are checked there."""
        if not self.open:
            return
        parent = self.open[-1]
        parent.children += 1
        parent.nodes += size.nodes
        parent.chars += size.chars
        if parent.nodes > MAX_NODES or parent.chars > MAX_CHARS:
            raise self.fail(
                event,
                f"document too large: more than {MAX_NODES} values or {MAX_CHARS} characters "
                "after expanding aliases (an alias bomb?)",
            )

    def _check_tag(self, ev: NodeEvent) -> None:
        tag = getattr(ev, "tag", None)
        if tag is not None and str(tag) not in _CORE_TAGS | self.tags:
            allowed = ", ".join(sorted(self.tags)) or "none"
            shown = str(tag)[:60]
            raise self.fail(ev, f"YAML tag {brief(shown)} is not supported (allowed: {allowed})")
        if tag is not None and str(tag) in self.tags and self._at_key():
            raise self.fail(ev, f"YAML tag {tag!s} applies to values, not to mapping keys")

    def event(self, ev: Event) -> None:
        if isinstance(ev, DocumentStartEvent) and ev.version not in (None, (1, 2)):
            # YAML 1.1 reads '1:30' as 90 (base 60), 'yes' as true, '010' as 8: not what
            # compose (YAML 1.2) reads, and a base-60 number may have thousands of digits
            version = ".".join(str(v) for v in ev.version)[:20]
            raise self.fail(ev, f"%YAML {version} is not supported: files are YAML 1.2")
        if isinstance(ev, NodeEvent) and not isinstance(ev, AliasEvent):
            self._check_tag(ev)
        if isinstance(ev, CollectionStartEvent):
            self._start(ev)
        elif isinstance(ev, CollectionEndEvent):
            done = self.open.pop()
            size = _Size(done.nodes, done.chars, True)
            if done.anchor is not None:
                self.anchors[done.anchor] = size
            self._add(ev, size)
        elif isinstance(ev, ScalarEvent):
            self._scalar(ev)
        elif isinstance(ev, AliasEvent):
            self._alias(ev)

    def _start(self, ev: CollectionStartEvent) -> None:
        if self._at_key():
            raise self.fail(ev, "a mapping or sequence cannot be a mapping key")
        if len(self.open) >= MAX_DEPTH:
            raise self.fail(ev, f"nested more than {MAX_DEPTH} levels deep")
        self.open.append(_Open(ev.anchor, isinstance(ev, MappingStartEvent)))

    def _scalar(self, ev: ScalarEvent) -> None:
        value = str(ev.value)
        plain = ev.style is None and ev.tag is None
        if plain and len(value) > MAX_NUMBER and _INTEGER.fullmatch(value):
            raise self.fail(ev, f"integer with more than {MAX_NUMBER} characters")
        if plain and self._at_key() and value in ("", "~", "null", "Null", "NULL"):
            raise self.fail(ev, "null cannot be a mapping key")
        size = _Size(1, len(value), False)
        if ev.anchor is not None:
            self.anchors[ev.anchor] = size
        self._add(ev, size)

    def _alias(self, ev: AliasEvent) -> None:
        name = str(ev.anchor)
        if any(o.anchor == name for o in self.open):
            raise self.fail(ev, f"alias *{name[:60]} refers to a node that contains it")
        size = self.anchors.get(name, _Size(1, 0, False))
        if size.collection and self._at_key():
            raise self.fail(ev, "a mapping or sequence cannot be a mapping key")
        self._add(ev, size)


def checking(
    get_event: Callable[[], Event], file: str, tags: frozenset[str]
) -> Callable[[], Event]:
    """`get_event` of a parser, checking each event as the composer takes it: one parse
    instead of a checking pass and a loading pass (ruamel's parser is pure Python; the
    largest files allowed took twice as long). The composer takes every event through
    `get_event` and builds no value before the document ends, so a limit still stops the
    load before any alias is expanded or any deep nest is built."""
    shape = _Shape(file, tags)

    def get() -> Event:
        ev = get_event()
        shape.event(ev)
        return ev

    return get
