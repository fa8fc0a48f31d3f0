"""The Apprise adapter and the notifier against a real HTTP receiver on 127.0.0.1: payloads,
a receiver answering 500 (counted failed), one that hangs (delivery times out, the caller
never waits), the bounded queue (the oldest dropped and counted), and secrets kept out of
logs and errors. No timed assertions: a blocked caller would hang the test (pytest-timeout)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from controller.adapters.notify_apprise import (
    AppriseSink,
    NotifyConfigError,
    redacted,
    targets,
)
from controller.core.notify import Ending, Kind, Notice, notice_for
from controller.core.outcome import Outcome
from controller.shell.rollout.notify import Notifier
from controller.shell.rollout.results import RolloutResult
from tests.support.receiver import Receiver, receiver

SECRET = "hunter2-s3cret"


@pytest.fixture()
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


class Captured(logging.Handler):
    """What reaches Berth's own log handlers: the root logger at INFO, as
    controller/shell/daemon/logs.setup configures it. (pytest's caplog would also hook
    loggers that do not propagate, such as Apprise's, which Berth never sees.)"""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.__dict__}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture()
def berth_log() -> Iterator[Captured]:
    root = logging.getLogger()
    h, level = Captured(), root.level
    root.addHandler(h)
    root.setLevel(logging.INFO)
    try:
        yield h
    finally:
        root.removeHandler(h)
        root.setLevel(level)


class Counts:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, kind: str, result: str) -> None:
        self.seen.append((kind, result))


def notice(i: int, outcome: Outcome = Outcome.ROLLED_BACK) -> Notice:
    n = notice_for(Ending("shop", "api", outcome, f"reason {i}", "1.0.0", f"2.0.{i}", f"r{i}"))
    assert n is not None
    return n


def sink_for(rx: Receiver, counts: Counts, **kw: object) -> AppriseSink:
    return AppriseSink(targets([("--notify", rx.url)], None, timeout=1.0), on_result=counts, **kw)  # type: ignore[arg-type]


def test_a_notice_arrives_as_json_with_title_body_and_type(rx: Receiver) -> None:
    counts = Counts()
    sink = sink_for(rx, counts)
    sink.send(notice(1))
    assert sink.flush(30)
    [p] = rx.payloads
    assert p["title"] == "shop/api: 2.0.1 rolled back, 1.0.0 serves"
    assert "reason: reason 1" in p["message"] and p["type"] == "warning"
    assert counts.seen == [("rolled_back", "sent")]
    sink.close(5)


def test_a_receiver_answering_500_is_counted_failed_without_the_secret(
    rx: Receiver, berth_log: Captured
) -> None:
    rx.mode = "500"
    counts = Counts()
    url = f"json://berth:{SECRET}@127.0.0.1:{rx.port}/hook/{SECRET}"
    sink = AppriseSink(targets([("--notify", url)], None, timeout=1.0), on_result=counts)
    sink.send(notice(1, Outcome.FAILED))
    assert sink.flush(30)
    assert counts.seen == [("failed", "failed")]
    assert "not delivered" in berth_log.text and "json://127.0.0.1" in berth_log.text
    assert SECRET not in berth_log.text
    sink.close(5)


def test_a_hanging_receiver_times_out_and_never_blocks_the_caller(rx: Receiver) -> None:
    rx.mode = "hang"
    counts = Counts()
    sink = sink_for(rx, counts)
    n = Notifier(sink)
    result = RolloutResult("shop", "api", "replace", Outcome.FAILED, "x", "1", "2", 1.0)
    assert n.rollout(result) is not None  # returned while the receiver holds the request
    assert rx.arrived.wait(30)
    assert sink.flush(30)  # the request timed out (1 s), the receiver still holds it
    assert counts.seen == [("failed", "failed")]
    rx.release()
    sink.close(5)


def test_a_full_queue_drops_the_oldest_and_counts_it(rx: Receiver) -> None:
    rx.mode = "hang"
    counts = Counts()
    sink = sink_for(rx, counts, capacity=2)
    sink.send(notice(1))
    assert rx.arrived.wait(30)  # notice 1 is in flight, held by the receiver
    for i in (2, 3, 4):
        sink.send(notice(i, Outcome.FAILED if i == 2 else Outcome.ROLLED_BACK))
    assert counts.seen == [("failed", "dropped")]  # 2 was the oldest waiting
    rx.mode = "ok"
    rx.release()
    assert sink.flush(30)
    titles = rx.titles()
    assert [t.split(":")[1].split()[0] for t in titles] == ["2.0.1", "2.0.3", "2.0.4"]
    sink.close(5)


def test_close_counts_what_it_could_not_deliver_as_dropped(rx: Receiver) -> None:
    rx.mode = "hang"
    counts = Counts()
    sink = sink_for(rx, counts)
    sink.send(notice(1))
    assert rx.arrived.wait(30)
    sink.send(notice(2))
    sink.close(0.01)  # notice 1 still in flight, notice 2 never tried
    assert ("rolled_back", "dropped") in counts.seen
    sink.send(notice(3))  # after close: dropped, not queued
    assert counts.seen.count(("rolled_back", "dropped")) == 2
    rx.release()


def test_notifier_sends_one_per_change(rx: Receiver) -> None:
    counts = Counts()
    sink = sink_for(rx, counts)
    n = Notifier(sink)
    fail = RolloutResult(
        "shop", "api", "replace", Outcome.FAILED, "pull failed", "1", "2", 1.0, revision="r2"
    )
    ok = RolloutResult(
        "shop", "api", "replace", Outcome.SUCCEEDED, "ok", "1", "2", 1.0, revision="r2"
    )
    sent = [n.rollout(r) is not None for r in (fail, fail, fail, ok, ok)]
    assert sent == [True, False, False, True, False]
    assert n.sync_failed("origin", "refused", "abc") is not None
    assert n.sync_failed("origin", "refused", "abc") is None
    n.sync_ok("origin")
    assert n.sync_failed("origin", "refused", "abc") is not None
    assert sink.flush(30)
    kinds = [p["title"] for p in rx.payloads]
    assert len(kinds) == 4 and "failed to deploy" in kinds[0] and "is live" in kinds[1]
    assert "sync failed" in kinds[2] and kinds[2] == kinds[3]  # again after sync_ok
    sink.close(5)


def test_a_disabled_notifier_does_nothing() -> None:
    n = Notifier(None)
    r = RolloutResult("shop", "api", "replace", Outcome.FAILED, "x", "1", "2", 1.0)
    assert not n.enabled and n.rollout(r) is None and n.sync_failed("s", "e", None) is None
    n.close()


@pytest.mark.parametrize(
    ("urls", "origin", "scheme"),
    [
        ([("--notify", f"slakc://{SECRET}@x/y")], "--notify", "slakc"),
        (
            [("BERTH_NOTIFY", "json://127.0.0.1:1/"), ("BERTH_NOTIFY", f"{SECRET}")],
            "BERTH_NOTIFY",
            "?",
        ),
    ],
)
def test_an_unusable_url_names_the_flag_never_the_url(
    urls: list[tuple[str, str]], origin: str, scheme: str, berth_log: Captured
) -> None:
    with pytest.raises(NotifyConfigError) as err:
        targets(urls, None)
    msg = str(err.value)
    assert msg.startswith(f"{origin}: notification URL #{len(urls)} ({scheme}://...)")
    assert SECRET not in msg and SECRET not in berth_log.text


def test_a_config_file_is_loaded_at_start(tmp_path: object, rx: Receiver) -> None:
    from pathlib import Path

    p = Path(str(tmp_path)) / "apprise.yml"
    p.write_text(f"urls:\n  - {rx.url}\n")
    assert len(targets([], str(p))) == 1
    empty = Path(str(tmp_path)) / "empty.yml"
    empty.write_text("urls: []\n")
    with pytest.raises(NotifyConfigError, match=r"--notify-config: .* holds no notification URL"):
        targets([], str(empty))
    with pytest.raises(NotifyConfigError, match="not a readable file"):
        targets([], str(Path(str(tmp_path)) / "missing.yml"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"json://u:{SECRET}@host:8080/p/{SECRET}?t={SECRET}", "json://host"),
        (f"slack://{SECRET}/{SECRET}", f"slack://{SECRET.lower()}"),  # privacy URL masks first
        ("no scheme", "?://"),
        ("http://[::1", "?"),
    ],
)
def test_redacted(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_kinds_are_the_closed_set() -> None:
    assert [k.value for k in Kind] == [
        "succeeded",
        "rolled_back",
        "quarantined",
        "failed",
        "canary_aborted",
        "sync_failed",
    ]
