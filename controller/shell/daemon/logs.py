"""Structured logs: one JSON object per line (for log shippers), or readable on a terminal."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from controller.shell.rollout.results import Event

FIELDS = ("stack", "service", "tag", "revision", "step", "duration", "error", "file")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        if getattr(record, "event", None):
            doc["message"] = record.getMessage()
        for f in FIELDS:
            v = getattr(record, f, None)
            if v is not None:
                doc[f] = v
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        where = "/".join(
            str(getattr(record, k)) for k in ("stack", "service") if getattr(record, k, None)
        )
        extra = " ".join(
            f"{k}={getattr(record, k)}"
            for k in ("tag", "step", "duration", "error")
            if getattr(record, k, None) is not None
        )
        text = f"{stamp} {record.levelname:<7} {where + ' ' if where else ''}{record.getMessage()}"
        if extra:
            text += f" ({extra})"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(fmt: str = "auto", level: int = logging.INFO) -> None:
    """fmt: json | human | auto (human on a terminal, JSON otherwise)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else HumanFormatter())
    root = logging.getLogger("berth")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def log_rollout_event(e: Event) -> None:
    """A rollout's progress event as one structured line (warnings for the bad turns)."""
    bad = e.phase in (
        "rollback",
        "rolled_back",
        "failed",
        "switch-back",
        "build-failed",
        "restart-failed",
    )
    logging.getLogger("berth.daemon").log(
        logging.WARNING if bad else logging.INFO,
        e.message,
        extra={
            "event": f"rollout.{e.phase}",
            "stack": e.project,
            "service": e.service,
            "step": e.phase,
        },
    )
