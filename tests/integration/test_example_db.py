"""The example stack's database and the API's migrations (issue 15's release task), on a real
Docker engine and a real PostgreSQL: berth-demo/postgres:15 and berth-demo/api's
`python3 -m app.migrate`.

One postgres container serves the module; each test gets its own database in it. The
migrations run as one-off containers of the API images on a network shared with postgres,
as Berth's release task runs them.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POSTGRES = "berth-demo/postgres:15"
USER, PASSWORD = "gesalps", "s3cret-" + secrets.token_hex(4)
WAITING_ON_THE_LOCK = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE application_name = 'app.migrate' AND wait_event = 'advisory'"
)


def _migrate_module() -> ModuleType:
    """compose/apps/api/app/migrate.py (it imports psycopg2 only when it connects)."""
    spec = importlib.util.spec_from_file_location(
        "example_migrate", REPO / "compose/apps/api/app/migrate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


migrate = _migrate_module()


def test_each_release_applies_the_migrations_it_needs() -> None:
    assert [m.version for m in migrate.migrations_for("1.0.0")] == [1]
    assert [m.version for m in migrate.migrations_for("2.0.0")] == [1, 2]
    assert [m.version for m in migrate.migrations_for("3.0.0")] == [1, 2]
    assert [m.version for m in migrate.migrations_for("3.1.0", broken=True)] == [1, 2, 3]
    assert migrate.target_version("0.0.0-dev") == 2  # a dev build: all of them
    assert migrate.describe("postgresql://u:pw@db:5432/x") == "db:5432/x"  # no password


@pytest.fixture(scope="module")
def example_images() -> None:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/build-example-images.sh")],
        cwd=REPO,
        env={**os.environ, "SKIP_CERT": "1", "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _wait_healthy(container: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if state["Status"] == "exited":
            break
        time.sleep(0.2)
    raise AssertionError(f"{container.name} not healthy: {container.logs().decode()[-3000:]}")


@pytest.fixture(scope="module")
def pg(docker_client: Any, example_images: None) -> Iterator[tuple[Any, Any]]:
    """(postgres container, network) shared by the module."""
    suffix = secrets.token_hex(4)
    network = docker_client.networks.create(f"bt-db-{suffix}", driver="bridge")
    container = None
    try:
        container = docker_client.containers.run(
            POSTGRES,
            name=f"bt-db-{suffix}",
            detach=True,
            network=network.name,
            environment={"POSTGRES_USER": USER, "POSTGRES_DB": USER, "POSTGRES_PASSWORD": PASSWORD},
            tmpfs={"/var/lib/postgresql/data": "size=256m"},
        )
        _wait_healthy(container)
        yield container, network
    finally:
        if container is not None:
            container.remove(force=True, v=True)
        network.remove()


def _sql(pg: tuple[Any, Any], sql: str, db: str = USER) -> str:
    """Run SQL inside the postgres container (its Unix socket), return the tuples only."""
    code, out = pg[0].exec_run(["psql", "-U", USER, "-d", db, "-XAtq", "-v", "ON_ERROR_STOP=1",
                                "-c", sql])  # fmt: skip
    assert code == 0, out.decode()
    return str(out.decode()).strip()


@pytest.fixture()
def database(pg: tuple[Any, Any]) -> str:
    """A fresh database for one test; returns its DATABASE_URL (as the API sees it)."""
    name = "t_" + secrets.token_hex(6)
    _sql(pg, f"CREATE DATABASE {name}")
    return f"postgresql://{USER}:{PASSWORD}@{pg[0].name}:5432/{name}"


def _run(
    docker_client: Any, pg: tuple[Any, Any], image: str, command: list[str], env: dict[str, str]
) -> tuple[int, str]:
    """A one-off container on postgres' network: (exit code, its output)."""
    container = docker_client.containers.run(
        image, command, detach=True, network=pg[1].name, environment=env
    )
    try:
        code = int(container.wait(timeout=120)["StatusCode"])
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def _migrate(docker_client: Any, pg: tuple[Any, Any], tag: str, url: str) -> tuple[int, str]:
    return _run(
        docker_client,
        pg,
        f"berth-demo/api:{tag}",
        ["python3", "-m", "app.migrate"],
        {"DATABASE_URL": url, "MIGRATE_CONNECT_TIMEOUT": "10"},
    )


def _versions(pg: tuple[Any, Any], url: str) -> list[int]:
    out = _sql(pg, "SELECT version FROM schema_migrations ORDER BY version", url.rsplit("/", 1)[1])
    return [int(v) for v in out.split()]


def test_postgres_runs_as_postgres_with_password_auth(
    docker_client: Any, pg: tuple[Any, Any]
) -> None:
    container = pg[0]
    uid = container.exec_run(["id", "-u", "postgres"]).output.decode().strip()
    top = container.top(ps_args="-o pid,uid,args")  # the host's ps: numeric uids
    uids = {row[1] for row in top["Processes"] if "postgres" in row[2]}
    assert uid.isdigit() and uid != "0" and uids == {uid}, top
    assert container.attrs["State"]["Health"]["Status"] == "healthy"

    def connect(password: str) -> tuple[int, str]:
        url = f"postgresql://{USER}:{password}@{container.name}:5432/{USER}"
        return _run(docker_client, pg, POSTGRES, ["psql", url, "-XAtc", "SELECT 41 + 1"], {})

    code, out = connect(PASSWORD)
    assert (code, out.strip()) == (0, "42"), out
    code, out = connect("wrong")
    assert code != 0 and "password authentication failed" in out, out


def test_migrate_twice_is_a_no_op_the_second_time(
    docker_client: Any, pg: tuple[Any, Any], database: str
) -> None:
    code, out = _migrate(docker_client, pg, "1.0.0", database)
    assert code == 0 and "applied 1; schema at version 1" in out, out
    code, out = _migrate(docker_client, pg, "1.0.0", database)
    assert code == 0 and "nothing to do; schema at version 1" in out, out
    assert _versions(pg, database) == [1]
    # 2.0.0 adds its own; 1.0.0 afterwards (a rollback of the app) leaves the newer schema
    code, out = _migrate(docker_client, pg, "2.0.0", database)
    assert code == 0 and "applied 2; schema at version 2" in out, out
    code, out = _migrate(docker_client, pg, "1.0.0", database)
    assert code == 0 and "nothing to do; schema at version 2" in out, out
    assert _versions(pg, database) == [1, 2]
    db = database.rsplit("/", 1)[1]
    columns = _sql(pg, "SELECT column_name FROM information_schema.columns "
                   "WHERE table_name = 'notes' ORDER BY ordinal_position", db)  # fmt: skip
    assert columns.split() == ["id", "body", "created_at", "author"]


def test_concurrent_runs_apply_each_migration_once(
    docker_client: Any, pg: tuple[Any, Any], database: str
) -> None:
    db = database.rsplit("/", 1)[1]
    # Hold the migrations' lock, so both runs are surely waiting on it at the same time;
    # release it (end that session) once they are.
    holder = pg[0].exec_run(
        ["psql", "-U", USER, "-d", db, "-XAtq", "-c",
         f"SELECT pg_advisory_lock({migrate.LOCK_KEY}), pg_sleep(60)"],
        detach=True,
    )  # fmt: skip
    assert holder.exit_code is None
    env = {"DATABASE_URL": database}
    runs = [
        docker_client.containers.run(
            "berth-demo/api:2.0.0", ["python3", "-m", "app.migrate"], detach=True,
            network=pg[1].name, environment=env,
        )
        for _ in range(2)
    ]  # fmt: skip
    try:
        waiting = 0
        deadline = time.monotonic() + 20
        while waiting < 2 and time.monotonic() < deadline:
            waiting = int(_sql(pg, WAITING_ON_THE_LOCK))
            time.sleep(0.1)
        ended = _sql(pg, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                     " WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()")  # fmt: skip
        assert waiting == 2, "the two runs were not waiting on the lock together"
        assert ended == "1"
        outs = []
        for run in runs:
            code = int(run.wait(timeout=60)["StatusCode"])
            outs.append(run.logs().decode(errors="replace"))
            assert code == 0, outs[-1]
    finally:
        for run in runs:
            run.remove(force=True)
    assert sorted("applied 1, 2;" in out for out in outs) == [False, True], outs
    assert sum("nothing to do; schema at version 2" in out for out in outs) == 1, outs
    assert _versions(pg, database) == [1, 2]


def test_a_failed_migration_leaves_the_schema_as_it_was(
    docker_client: Any, pg: tuple[Any, Any], database: str
) -> None:
    assert _migrate(docker_client, pg, "2.0.0", database)[0] == 0
    code, out = _migrate(docker_client, pg, "3.1.0", database)
    assert code == 1, out
    assert "migration 3 (" in out and 'relation "note" does not exist' in out, out
    assert "rolled back, the schema stays at version 2" in out, out
    assert PASSWORD not in out
    assert _versions(pg, database) == [1, 2]
    db = database.rsplit("/", 1)[1]
    # the statement before the failing one (an index) was rolled back with it
    index = "SELECT count(*) FROM pg_indexes WHERE indexname = 'notes_created_at'"
    assert _sql(pg, index, db) == "0"


def test_migrate_reports_an_unreachable_database(docker_client: Any, pg: tuple[Any, Any]) -> None:
    url = f"postgresql://{USER}:wrong@{pg[0].name}:5432/{USER}"
    code, out = _migrate(docker_client, pg, "1.0.0", url)
    assert code == 1 and "cannot connect to" in out and "password authentication failed" in out
    assert "wrong" not in out.replace("password authentication failed", "")


def _http(container: Any, method: str, path: str, body: str | None = None) -> tuple[int, str]:
    probe = (
        "import sys, urllib.request, urllib.error\n"
        "data = sys.argv[3].encode() if len(sys.argv) > 3 else None\n"
        "req = urllib.request.Request('http://127.0.0.1:8000' + sys.argv[2], data=data,"
        " method=sys.argv[1], headers={'Content-Type': 'application/json'})\n"
        "try:\n r = urllib.request.urlopen(req, timeout=5); print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e: print(e.code, e.read().decode())\n"
        "except OSError as e: print(0, e)\n"
    )
    args = ["python3", "-c", probe, method, path] + ([body] if body is not None else [])
    out = container.exec_run(args).output
    status, _, text = out.decode().strip().partition(" ")
    return int(status), text


def test_notes_need_the_migration_but_health_does_not(
    docker_client: Any, pg: tuple[Any, Any], database: str
) -> None:
    api = docker_client.containers.run(
        "berth-demo/api:2.0.0", detach=True, network=pg[1].name, init=True,
        environment={"DATABASE_URL": database},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while _http(api, "GET", "/health")[0] != 200:
            assert time.monotonic() < deadline, api.logs().decode()[-2000:]
            time.sleep(0.3)
        status, text = _http(api, "GET", "/notes")
        assert status == 503 and "schema not migrated" in text and "app.migrate" in text, text
        assert _migrate(docker_client, pg, "2.0.0", database)[0] == 0
        status, text = _http(api, "POST", "/notes", '{"body": "hello", "author": "ann"}')
        assert status == 201 and '"author":"ann"' in text, text
        assert _http(api, "POST", "/notes", '{"nobody": 1}')[0] == 400
        status, text = _http(api, "GET", "/notes")
        assert status == 200 and '"body":"hello"' in text, text
    finally:
        api.remove(force=True)


def test_sigterm_is_a_fast_shutdown(docker_client: Any, example_images: None) -> None:
    """A client in a long query would hold a smart shutdown (postgres' own SIGTERM) forever:
    the entrypoint turns SIGTERM into a fast one, which ends it, and exits 0."""
    container = docker_client.containers.run(
        POSTGRES, detach=True, environment={"POSTGRES_PASSWORD": PASSWORD},
        tmpfs={"/var/lib/postgresql/data": "size=256m"},
    )  # fmt: skip
    try:
        _wait_healthy(container)
        container.exec_run(["psql", "-U", "postgres", "-c", "SELECT pg_sleep(60)"], detach=True)
        time.sleep(0.5)
        start = time.monotonic()
        container.kill(signal="SIGTERM")
        code = int(container.wait(timeout=30)["StatusCode"])
        took = time.monotonic() - start
        logs = container.logs().decode(errors="replace")
        assert code == 0 and took < 10, (code, took, logs[-2000:])
        assert "fast shutdown request" in logs and "database system is shut down" in logs
    finally:
        container.remove(force=True, v=True)
