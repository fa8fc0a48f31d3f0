"""Docker reference grammar for what `desired/` may write: a tag, a digest, or both.

desired/ is the part of the configuration that many people can commit to; a tag is pasted
into an image reference, so anything outside Docker's grammar (a slash, a second colon,
whitespace) is refused here instead of producing a surprising reference later.
"""

from __future__ import annotations

import re

from controller.errors import brief

TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # ASCII only, as Docker's grammar
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# repository[:tag][@digest], loosely after distribution/reference: lowercase path components,
# an optional registry host with port.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?|\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?)"  # noqa: E501
IMAGE_RE = re.compile(
    rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?"
)


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not a valid tag, digest or `tag@digest`; None when it is."""
    if not isinstance(tag, str) or not tag:
        return "must be a non-empty string"
    if tag.startswith("sha256:"):
        if DIGEST_RE.fullmatch(tag):
            return None
        return "invalid digest: expected 'sha256:' followed by 64 lowercase hex digits"
    name, sep, digest = tag.partition("@")
    if sep and not DIGEST_RE.fullmatch(digest):
        return "invalid digest after '@': expected 'sha256:' followed by 64 lowercase hex digits"
    if not TAG_RE.fullmatch(name):
        return (
            f"invalid tag {brief(name)}: a tag is 1-128 ASCII characters: letters, digits, "
            "'_', '.' and '-', not starting with '.' or '-'"
        )
    return None


def image_problem(image: str) -> str | None:
    """Why a compose `image:` is not a valid reference; None when it is."""
    if not isinstance(image, str) or not image:
        return "must be a non-empty string"
    if not IMAGE_RE.fullmatch(image):
        return f"invalid image reference {brief(image)}"
    return None
