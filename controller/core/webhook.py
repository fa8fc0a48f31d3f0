"""Judging a git webhook delivery (POST /hooks/git): pure, no I/O, no clock of its own.

What it checks, in this order, so that nothing unauthenticated can change state:
1. a signature header in a known format (GitHub `X-Hub-Signature-256: sha256=<hex>`, Gitea
   `X-Gitea-Signature: <hex>`, Forgejo `X-Forgejo-Signature`, Gogs `X-Gogs-Signature`),
   64 lower- or upper-case hex digits, compared in constant time with HMAC-SHA256 of the
   raw body under the shared secret; anything else is BAD_SIGNATURE;
2. only then, replay: the delivery id (`X-GitHub-Delivery`, `X-Gitea-Delivery`, ...) and
   the body's digest are remembered in a bounded window (`ReplayWindow`); either seen
   before is REPLAYED. The delivery id is not covered by the signature, so the body digest
   is what stops a captured delivery resent under a new id;
3. the event: a `ping` (sent when the hook is created) and events that are not pushes
   are IGNORED; a push's JSON (or GitHub's form-encoded `payload=`) must name a `ref`; a
   push to another branch is IGNORED; a body that does not parse is MALFORMED.

A replay could only make Berth fetch again (the sync takes what the remote holds, never
what the hook says), so the window's job is to stop amplification, not forgery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs

MAX_HEADER_VALUE = 512  # a signature is 71 characters, a delivery id a UUID

# (signature header, prefix before the hex digest, delivery-id header, event header)
_FORMATS = (
    ("x-hub-signature-256", "sha256=", "x-github-delivery", "x-github-event"),
    ("x-gitea-signature", "", "x-gitea-delivery", "x-gitea-event"),
    ("x-forgejo-signature", "", "x-forgejo-delivery", "x-forgejo-event"),
    ("x-gogs-signature", "", "x-gogs-delivery", "x-gogs-event"),
)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class Verdict(StrEnum):
    """The outcome of one delivery; also the `result` label of berth_webhooks_total."""

    ACCEPTED = "accepted"  # signed, new, a push to our branch: sync now
    IGNORED = "ignored"  # signed and new, but not a push to our branch
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"
    TOO_LARGE = "too_large"  # decided by the HTTP server before the body is read
    MALFORMED = "malformed"  # signed, but the body is not a push event we can read


HTTP_STATUS = {
    Verdict.ACCEPTED: 202,
    Verdict.IGNORED: 202,
    Verdict.BAD_SIGNATURE: 403,
    Verdict.REPLAYED: 409,
    Verdict.TOO_LARGE: 413,
    Verdict.MALFORMED: 400,
}


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    delivery: str | None = None


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def signature_problem(secret: bytes, body: bytes, headers: Mapping[str, str]) -> str | None:
    """None when a known signature header carries the right HMAC-SHA256 of `body`."""
    h = lower_keys(headers)
    for header, prefix, _, _ in _FORMATS:
        value = h.get(header)
        if value is None:
            continue
        value = value.strip()
        if len(value) > MAX_HEADER_VALUE:
            return f"{header} is too long"
        if not value.startswith(prefix):
            return f"{header} does not start with {prefix!r}"
        digest = value[len(prefix) :]
        if not _HEX64.fullmatch(digest):
            return f"{header} is not 64 hex digits"
        want = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(want, digest.lower()):
            return None
        return f"{header} does not match the body"
    return "no signature header (X-Hub-Signature-256 or X-Gitea-Signature)"


def delivery_and_event(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The delivery id and event name, from whichever forge's headers are present."""
    h = lower_keys(headers)
    delivery = event = None
    for _, _, d, e in _FORMATS:
        delivery = delivery or _short(h.get(d))
        event = event or _short(h.get(e))
    return delivery, event


def _short(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_HEADER_VALUE else None


def pushed_ref(body: bytes, content_type: str) -> str | None:
    """The `ref` of a push payload (JSON, or form-encoded with a `payload` field); None
    when the body is not such a payload."""
    try:
        text = body.decode("utf-8")
        if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
            fields = parse_qs(text, max_num_fields=16)
            text = fields.get("payload", [""])[0]
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    ref = doc.get("ref") if isinstance(doc, dict) else None
    return ref if isinstance(ref, str) else None


class ReplayWindow:
    """Delivery ids and body digests seen in the last `ttl` seconds, at most `size` of
    each (least recently seen first out). Not thread-safe: the caller holds a lock."""

    def __init__(self, size: int = 1024, ttl: float = 24 * 3600.0) -> None:
        self.size, self.ttl = size, ttl
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, keys: list[str], now: float) -> bool:
        """Whether any of `keys` was seen within the window; records all of them."""
        while self._seen and now - next(iter(self._seen.values())) >= self.ttl:
            self._seen.popitem(last=False)
        hit = any(k in self._seen for k in keys)
        for k in keys:
            self._seen[k] = now
            self._seen.move_to_end(k)
        while len(self._seen) > 2 * self.size:
            self._seen.popitem(last=False)
        return hit


def judge(
    secret: bytes,
    body: bytes,
    headers: Mapping[str, str],
    *,
    branch: str,
    window: ReplayWindow,
    now: float,
) -> Judgement:
    """One delivery's verdict (see the module docstring for the order of the checks)."""
    problem = signature_problem(secret, body, headers)
    if problem is not None:
        return Judgement(Verdict.BAD_SIGNATURE, problem)
    delivery, event = delivery_and_event(headers)
    keys = ["body:" + hashlib.sha256(body).hexdigest()]
    if delivery is not None:
        keys.append("id:" + delivery)
    if window.seen(keys, now):
        return Judgement(Verdict.REPLAYED, "delivery seen before", delivery)
    if event is not None and event.lower() != "push":
        return Judgement(Verdict.IGNORED, f"event {event!r} is not a push", delivery)
    ref = pushed_ref(body, lower_keys(headers).get("content-type", "application/json"))
    if ref is None:
        return Judgement(Verdict.MALFORMED, "body is not a push payload with a ref", delivery)
    if ref != f"refs/heads/{branch}":
        return Judgement(Verdict.IGNORED, f"push to {ref[:100]!r}, not {branch!r}", delivery)
    return Judgement(Verdict.ACCEPTED, f"push to {branch}", delivery)
