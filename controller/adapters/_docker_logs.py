"""A container's last log lines (`docker logs --tail N`), bounded in memory.

The log is the container's own output: anything at all, in any encoding, in lines of any
length. It is streamed and only the last `max_bytes` are kept, so a container that wrote
one 1 GB line costs time to skip, not memory; bytes that are not UTF-8 become U+FFFD.
"""

from __future__ import annotations

from typing import Any

MAX_BYTES = 64 * 1024


def read_tail(api: Any, cid: str, tail: int, *, max_bytes: int = MAX_BYTES) -> list[str]:
    """stdout and stderr interleaved as Docker stored them, oldest first, at most `tail`
    lines. The docker SDK strips the stream framing (it inspects the container for a tty)."""
    if tail <= 0:
        return []
    buf = bytearray()
    # follow=False: the SDK follows a streamed log by default, which never ends while the
    # container runs (an unhealthy one still does)
    stream = api.logs(
        cid, stdout=True, stderr=True, stream=True, follow=False, tail=tail, timestamps=False
    )
    try:
        for chunk in stream:
            buf += chunk if isinstance(chunk, bytes | bytearray) else str(chunk).encode()
            if len(buf) > 2 * max_bytes:
                del buf[: len(buf) - max_bytes]
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    data = bytes(buf[-max_bytes:])
    return data.decode("utf-8", errors="replace").splitlines()[-tail:]
