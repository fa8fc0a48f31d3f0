"""Contract of the StateStore port on a real SQLite file (the CLI and daemon share it)."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.sqlite_store import (
    ABANDONED_REASON,
    SCHEMA_VERSION,
    SqliteStateStore,
    migrate,
)
from controller.core.outcome import Outcome
from controller.errors import PermanentError
from controller.ports import CanaryRecord


def _begin(
    store: SqliteStateStore,
    service: str = "api",
    project: str = "shop",
    to_tag: str = "1.0",
    at: float = 100.0,
    **kw: Any,
) -> int:
    args: dict[str, Any] = dict(
        project=project,
        service=service,
        from_tag=None,
        to_tag=to_tag,
        from_revision=None,
        to_revision=f"rev-{to_tag}",
        commit="c0ffee",
        at=at,
    )
    args.update(kw)
    return store.begin_rollout(**args)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStateStore:
    return SqliteStateStore(str(tmp_path / "state.db"))


def test_begin_finish_history_last(store: SqliteStateStore) -> None:
    a = _begin(store, to_tag="1.0", at=100)
    store.finish_rollout(a, outcome=Outcome.SUCCEEDED, reason="", at=110)
    b = _begin(store, to_tag="1.1", at=200, from_tag="1.0", from_revision="rev-1.0")
    [new, old] = store.history("shop", "api")
    assert (new.id, old.id) == (b, a)
    assert new.outcome == "in_progress" and new.finished_at is None
    assert (new.from_tag, new.to_tag, new.from_revision, new.commit) == (
        "1.0",
        "1.1",
        "rev-1.0",
        "c0ffee",
    )
    assert old.outcome == "succeeded" and old.finished_at == 110
    assert store.last("shop", "api") == new
    assert store.last("shop", "web") is None
    store.finish_rollout(b, outcome=Outcome.ROLLED_BACK, reason="unhealthy", at=250)
    last = store.last("shop", "api")
    assert last is not None and (last.outcome, last.reason) == ("rolled_back", "unhealthy")
    assert store.history("shop", "api", limit=1) == [last]


def test_finish_rejects_unknown_ids_and_non_final_outcomes(store: SqliteStateStore) -> None:
    with pytest.raises(PermanentError):
        store.finish_rollout(999, outcome=Outcome.FAILED, reason="", at=1)
    rid = _begin(store)
    with pytest.raises(ValueError):
        store.finish_rollout(rid, outcome=Outcome.IN_PROGRESS, reason="", at=1)


def test_history_without_project_spans_projects(store: SqliteStateStore) -> None:
    _begin(store, project="shop")
    _begin(store, project="blog")
    _begin(store, project="blog", service="web")
    assert {r.project for r in store.history(None, "api")} == {"shop", "blog"}
    assert [r.project for r in store.history("blog", "api")] == ["blog"]


def test_last_good_and_outcomes(store: SqliteStateStore) -> None:
    good = _begin(store, to_tag="1.0")
    store.finish_rollout(good, outcome=Outcome.SUCCEEDED, reason="", at=1)
    bad = _begin(store, to_tag="1.1")
    store.finish_rollout(bad, outcome=Outcome.FAILED, reason="exit 1", at=2)
    web = _begin(store, service="web", to_tag="3")
    lg = store.last_good("shop", "api")
    assert lg is not None and lg.to_tag == "1.0"
    assert store.last_good("shop", "web") is None
    out = store.outcomes()
    assert set(out) == {("shop", "api"), ("shop", "web")}
    assert out[("shop", "api")].id == bad and out[("shop", "web")].id == web


def test_abandon_in_progress_supersedes_only_open_rollouts(store: SqliteStateStore) -> None:
    done = _begin(store)
    store.finish_rollout(done, outcome=Outcome.SUCCEEDED, reason="", at=1)
    open_api = _begin(store)
    open_web = _begin(store, service="web")
    assert store.abandon_in_progress("shop", "api", at=5) == 1
    rec = store.last("shop", "api")
    assert rec is not None and rec.id == open_api
    assert (rec.outcome, rec.reason, rec.finished_at) == ("superseded", ABANDONED_REASON, 5)
    assert store.abandon_in_progress(None, None, at=6) == 1
    web = store.last("shop", "web")
    assert web is not None and web.id == open_web and web.outcome == "superseded"
    assert store.history("shop", "api")[-1].outcome == "succeeded"


def test_quarantine_is_unique_and_liftable(store: SqliteStateStore) -> None:
    store.quarantine(project="shop", service="api", revision="r1", tag="1.1", reason="a", at=10)
    store.quarantine(project="shop", service="api", revision="r1", tag="1.1", reason="b", at=20)
    store.quarantine(project="blog", service="api", revision="r9", tag="2", reason="c", at=30)
    [q1, q2] = store.quarantined()
    assert (q1.project, q1.revision, q1.reason, q1.since) == ("shop", "r1", "b", 10)
    assert q2.project == "blog"
    assert store.lift_quarantine("shop", "api") == 1
    assert store.lift_quarantine("shop", "api") == 0
    assert [q.project for q in store.quarantined()] == ["blog"]
    assert store.lift_quarantine(None, "api") == 1 and store.quarantined() == []


def test_reopen_persists(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    first = SqliteStateStore(path)
    rid = _begin(first)
    first.quarantine(project="shop", service="api", revision="r", tag="t", reason="x", at=1)
    first.close()
    again = SqliteStateStore(path)
    last = again.last("shop", "api")
    assert last is not None and last.id == rid
    assert len(again.quarantined()) == 1
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_migration_from_an_empty_file_and_refusal_of_a_newer_one(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    SqliteStateStore(str(path)).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert migrate(conn) == SCHEMA_VERSION  # idempotent
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(PermanentError):
        SqliteStateStore(str(path))


def test_memory_store_works() -> None:
    mem = SqliteStateStore(":memory:")
    _begin(mem)
    assert len(mem.history(None, "api")) == 1


def test_concurrent_writers_from_four_threads(store: SqliteStateStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                rid = _begin(store, service=f"s{n}", to_tag=str(i))
                store.finish_rollout(rid, outcome=Outcome.SUCCEEDED, reason="", at=float(i))
                store.quarantine(
                    project="shop",
                    service=f"s{n}",
                    revision=str(i),
                    tag="t",
                    reason="r",
                    at=float(i),
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.outcomes()) == 4
    assert all(len(store.history("shop", f"s{n}", limit=100)) == 50 for n in range(4))
    assert len(store.quarantined()) == 200


def _failed(store: SqliteStateStore, reason: str, at: float, **kw: Any) -> int:
    rid = _begin(store, at=at, **kw)
    store.finish_rollout(rid, outcome=Outcome.FAILED, reason=reason, at=at + 1)
    return rid


def test_a_retried_failure_is_one_record_with_attempts(store: SqliteStateStore) -> None:
    first = _failed(store, "pull failed: registry down", 100, to_tag="2.0")
    again = _failed(store, "pull failed: registry still down", 160, to_tag="2.0")
    assert store.absorb_retry(again) is True
    [row] = store.history("shop", "api")
    assert (row.id, row.attempts, row.reason, row.finished_at, row.started_at) == (
        first,
        2,
        "pull failed: registry still down",
        161,
        100,
    )
    third = _failed(store, "pull failed: timeout", 220, to_tag="2.0")
    assert store.absorb_retry(third) is True
    assert [r.attempts for r in store.history("shop", "api")] == [3]


def test_other_failures_stay_separate_records(store: SqliteStateStore) -> None:
    a = _failed(store, "pull failed: down", 100, to_tag="2.0")
    b = _failed(store, "nginx reload failed: boom", 200, to_tag="2.0")  # another kind
    assert store.absorb_retry(b) is False
    c = _failed(store, "nginx reload failed: boom", 300, to_tag="2.1")  # another revision
    assert store.absorb_retry(c) is False
    ok = _begin(store, to_tag="2.1", at=400)
    store.finish_rollout(ok, outcome=Outcome.SUCCEEDED, reason="", at=401)
    assert store.absorb_retry(ok) is False  # not a failure
    d = _failed(store, "nginx reload failed: boom", 500, to_tag="2.1")  # after a success
    assert store.absorb_retry(d) is False
    e = _failed(store, "pull failed: down", 600, to_tag="2.0", service="web")  # other service
    assert store.absorb_retry(e) is False
    assert [r.id for r in store.history("shop", "api")] == [d, ok, c, b, a]
    assert all(r.attempts == 1 for r in store.history("shop", "api"))


def test_a_version_1_file_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    from controller.adapters.sqlite_store import MIGRATIONS

    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    for stmt in MIGRATIONS[0]:
        conn.execute(stmt)
    conn.execute(
        "INSERT INTO rollouts (project, service, to_tag, to_revision, started_at, outcome)"
        " VALUES ('shop', 'api', '1.0', 'rev-1.0', 1.0, 'succeeded')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = SqliteStateStore(str(path))
    [row] = store.history("shop", "api")
    assert (row.to_tag, row.attempts) == ("1.0", 1)


# -- canaries ---------------------------------------------------------------------------------


def _canary(
    project: str = "shop",
    service: str = "api",
    revision: str = "rev-2",
    step: int = 1,
    weight: int = 10,
    paused: bool = False,
    at: float = 100.0,
) -> CanaryRecord:
    return CanaryRecord(
        project=project,
        service=service,
        revision=revision,
        tag="2.0",
        step=step,
        steps=2,
        weight=weight,
        paused=paused,
        updated_at=at,
    )


def test_canary_progress_is_one_row_per_service(store: SqliteStateStore) -> None:
    assert store.canaries() == []
    store.canary_progress(_canary())
    assert store.canaries() == [_canary()]
    store.canary_progress(_canary(step=2, weight=50, paused=True, at=130.0))
    assert store.canaries() == [_canary(step=2, weight=50, paused=True, at=130.0)]
    store.canary_progress(_canary(service="web"))
    store.canary_progress(_canary(project="blog"))
    assert [(c.project, c.service) for c in store.canaries()] == [
        ("blog", "api"),
        ("shop", "api"),
        ("shop", "web"),
    ]


def test_canary_command_without_a_canary_is_none(store: SqliteStateStore) -> None:
    assert store.canary_command("shop", "api", "promote") is None
    assert store.canary_command(None, "api", "promote") is None
    store.canary_progress(_canary(service="web"))
    assert store.canary_command("shop", "api", "promote") is None
    assert store.canary_command("blog", "web", "promote") is None
    assert [c.command for c in store.canaries()] == [None]


def test_canary_command_is_stored_and_taken_once(store: SqliteStateStore) -> None:
    store.canary_progress(_canary())
    found = store.canary_command("shop", "api", "promote")
    assert found is not None
    assert (found.project, found.service, found.revision, found.step, found.weight) == (
        "shop",
        "api",
        "rev-2",
        1,
        10,
    )
    [row] = store.canaries()
    assert row.command == "promote"
    assert store.take_canary_command("shop", "api", "rev-2") == "promote"
    assert store.take_canary_command("shop", "api", "rev-2") is None
    [row] = store.canaries()
    assert row.command is None and row.weight == 10  # the canary itself stays


def test_a_later_command_replaces_a_pending_one(store: SqliteStateStore) -> None:
    store.canary_progress(_canary())
    assert store.canary_command("shop", "api", "pause") is not None
    assert store.canary_command("shop", "api", "abort") is not None
    assert store.take_canary_command("shop", "api", "rev-2") == "abort"


def test_a_command_for_another_revision_is_not_taken(store: SqliteStateStore) -> None:
    store.canary_progress(_canary(revision="rev-2"))
    assert store.canary_command("shop", "api", "abort") is not None
    assert store.take_canary_command("shop", "api", "rev-3") is None
    assert store.take_canary_command("blog", "api", "rev-2") is None
    assert store.take_canary_command("shop", "web", "rev-2") is None
    assert store.take_canary_command("shop", "api", "rev-2") == "abort"


def test_progress_keeps_a_pending_command_of_the_same_revision_only(
    store: SqliteStateStore,
) -> None:
    store.canary_progress(_canary(revision="rev-2"))
    store.canary_command("shop", "api", "pause")
    store.canary_progress(_canary(revision="rev-2", step=2, weight=50, at=140.0))
    [row] = store.canaries()
    assert (row.step, row.weight, row.command) == (2, 50, "pause")
    store.canary_progress(_canary(revision="rev-3", at=200.0))  # a newer release's canary
    [row] = store.canaries()
    assert (row.revision, row.step, row.weight, row.command) == ("rev-3", 1, 10, None)
    assert store.take_canary_command("shop", "api", "rev-3") is None


def test_canary_end_removes_the_row_and_its_command(store: SqliteStateStore) -> None:
    store.canary_progress(_canary())
    store.canary_progress(_canary(service="web"))
    store.canary_command("shop", "api", "abort")
    store.canary_end("shop", "api")
    assert [c.service for c in store.canaries()] == ["web"]
    assert store.take_canary_command("shop", "api", "rev-2") is None
    assert store.canary_command("shop", "api", "promote") is None
    store.canary_end("shop", "api")  # idempotent
    store.canary_end("shop", "web")
    assert store.canaries() == []


def test_canary_command_without_project(store: SqliteStateStore) -> None:
    store.canary_progress(_canary(project="shop"))
    found = store.canary_command(None, "api", "pause")
    assert found is not None and found.project == "shop"
    assert store.take_canary_command("shop", "api", "rev-2") == "pause"
    store.canary_progress(_canary(project="blog"))
    assert store.canary_command(None, "api", "abort") is None  # ambiguous: which one?
    assert [c.command for c in store.canaries()] == [None, None]
    found = store.canary_command("blog", "api", "abort")
    assert found is not None and found.project == "blog"
    assert store.take_canary_command("shop", "api", "rev-2") is None
    assert store.take_canary_command("blog", "api", "rev-2") == "abort"


def test_canaries_survive_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    first = SqliteStateStore(path)
    first.canary_progress(_canary(paused=True))
    first.canary_command("shop", "api", "resume")
    first.close()
    again = SqliteStateStore(path)
    [row] = again.canaries()
    assert row == replace(_canary(paused=True), command="resume")
    assert again.take_canary_command("shop", "api", "rev-2") == "resume"


def test_a_version_2_file_is_migrated_to_3_and_keeps_its_rows(tmp_path: Path) -> None:
    from controller.adapters.sqlite_store import MIGRATIONS

    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    for stmt in MIGRATIONS[0] + MIGRATIONS[1]:
        conn.execute(stmt)
    conn.execute(
        "INSERT INTO rollouts (project, service, to_tag, to_revision, started_at, outcome,"
        " attempts) VALUES ('shop', 'api', '1.0', 'rev-1.0', 1.0, 'failed', 3)"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    store = SqliteStateStore(str(path))
    [row] = store.history("shop", "api")
    assert (row.to_tag, row.outcome, row.attempts) == ("1.0", "failed", 3)
    assert store.canaries() == []
    store.canary_progress(_canary())
    assert store.canaries() == [_canary()]
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"rollouts", "quarantine", "canary"} <= tables
    conn.close()


# -- release tasks (ReleaseLog) ---------------------------------------------------------------

KEY = ("shop", "api", "rev-2", "migrate")


def test_a_release_task_is_recorded_before_and_after_and_survives_a_reopen(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "state.db")
    store = SqliteStateStore(path)
    assert store.release_task(*KEY) is None
    store.release_begin(*KEY, tag="2.0", at=100.0)
    store.release_container(*KEY, "c" * 64)
    store.close()
    again = SqliteStateStore(path)  # a controller killed here finds it running
    rec = again.release_task(*KEY)
    assert rec is not None and (rec.state, rec.container, rec.started_at) == (
        "running",
        "c" * 64,
        100.0,
    )
    again.release_end(*KEY, state="failed", exit_code=3, reason="boom", log_tail="x" * 9000, at=5)
    rec = again.release_task(*KEY)
    assert rec is not None and (rec.state, rec.exit_code, rec.reason) == ("failed", 3, "boom")
    assert len(rec.log_tail) == 8192 and rec.finished_at == 5
    again.release_begin(*KEY, tag="2.0", at=200.0)  # retried: a fresh attempt replaces it
    rec = again.release_task(*KEY)
    assert rec is not None and (rec.state, rec.container, rec.exit_code) == ("running", None, None)


def test_release_tasks_are_listed_newest_first_per_project(store: SqliteStateStore) -> None:
    store.release_begin("shop", "api", "r1", "migrate", tag="1", at=1.0)
    store.release_begin("shop", "api", "r2", "migrate", tag="2", at=2.0)
    store.release_begin("other", "db", "r9", "seed", tag="9", at=3.0)
    assert [r.revision for r in store.release_tasks("shop")] == ["r2", "r1"]
    assert [r.revision for r in store.release_tasks(None, limit=2)] == ["r9", "r2"]


def test_release_end_refuses_a_state_that_is_not_final(store: SqliteStateStore) -> None:
    store.release_begin(*KEY, tag="2.0", at=1.0)
    with pytest.raises(ValueError):
        store.release_end(*KEY, state="running", exit_code=None, reason="", log_tail="", at=2)
