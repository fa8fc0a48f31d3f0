"""x-berth.release, x-berth.smoke and x-berth.hooks: what they become, and every bad value
refused with its file, line and field (core/compose/tasks.py)."""

from __future__ import annotations

import re
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.config import build_config
from controller.core.model import ServiceSpec
from controller.core.task_options import HookSpec, ReleaseTask, SmokeCheck
from controller.errors import ConfigError
from tests.unit.test_bad_inputs import BASE_DESIRED, COMPOSE, DESIRED, reader

HEAD = """\
name: app
x-berth:
  proxy: {service: web, upstreams_file: ../nginx/up.conf}
services:
  web:
    image: nginx
  api:
    image: reg/api
    expose: ["8000"]
    x-berth:
      upstream: {name: api_up, port: 8000}
"""


def _compose(extra: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(extra), " " * 6)


def _spec(extra: str) -> ServiceSpec:
    compose = _compose(extra)
    files = reader({DESIRED: BASE_DESIRED, COMPOSE: compose})
    config = build_config([(DESIRED, BASE_DESIRED)], environ={}, files=files)
    return next(t.spec for t in config.targets if t.service == "api")


def _problems(extra: str) -> str:
    compose = _compose(extra)
    files = reader({DESIRED: BASE_DESIRED, COMPOSE: compose})
    with pytest.raises(ConfigError) as err:
        build_config([(DESIRED, BASE_DESIRED)], environ={}, files=files)
    return str(err.value)


def test_release_tasks_with_defaults_and_a_string_command() -> None:
    spec = _spec("""\
        release:
          - {name: migrate, command: [python3, -m, app.migrate], timeout: 2m}
          - command: "sh -c 'echo warm'"
        """)
    assert spec.berth.release == (
        ReleaseTask("migrate", ("python3", "-m", "app.migrate"), 120.0),
        ReleaseTask("release-2", ("sh", "-c", "echo warm"), 300.0),
    )


def test_smoke_checks_take_their_port_from_the_upstream_and_keep_every_field() -> None:
    spec = _spec("""\
        bake: 10s
        smoke:
          - path: /items
          - name: create
            path: /items?x=1
            method: post
            port: 9000
            headers: {Content-Type: application/json}
            body: '{"a": 1}'
            status: [200, 201]
            body_matches: '"id":\\s*\\d+'
            response_headers: {Content-Type: '^application/json'}
            timeout: 2s
            when: both
        """)
    first, second = spec.berth.smoke
    assert first == SmokeCheck(name="smoke-1", path="/items", port=8000)
    assert first.before and not first.bake
    assert second == SmokeCheck(
        name="create",
        path="/items?x=1",
        port=9000,
        method="POST",
        headers=(("Content-Type", "application/json"),),
        body='{"a": 1}',
        status=(200, 201),
        body_matches='"id":\\s*\\d+',
        response_headers=(("content-type", "^application/json"),),
        timeout=2.0,
        when="both",
    )
    assert second.before and second.bake


def test_hooks_of_each_event() -> None:
    spec = _spec("""\
        hooks:
          start: [{command: ./pre.sh, required: true, timeout: 5s}]
          success: [{url: "https://hooks.example/ok"}]
          rollback: [{url: "http://127.0.0.1:9/rb", timeout: 1s}, {command: [notify, rb]}]
        """)
    hooks = spec.berth.hooks
    assert hooks.start == (HookSpec(command=("./pre.sh",), timeout=5.0, required=True),)
    assert hooks.success == (HookSpec(url="https://hooks.example/ok"),)
    assert hooks.of("rollback") == (
        HookSpec(url="http://127.0.0.1:9/rb", timeout=1.0),
        HookSpec(command=("notify", "rb")),
    )


BAD = [
    ("release: {command: x}", "x-berth.release", "must be a list"),
    ("release: [{name: m}]", "x-berth.release.0", "needs 'command'"),
    ("release: [{command: []}]", "x-berth.release.0.command", "must not be empty"),
    ("release: [{command: x, timeout: 0s}]", "x-berth.release.0.timeout", "greater than 0"),
    ("release: [{command: x, timout: 1s}]", "x-berth.release.0.timout", "unknown key"),
    ("release: [{command: x, name: m}, {command: y, name: m}]", "release.1.name", "twice"),
    ("release: [{command: x, name: 'a b'}]", "x-berth.release.0.name", "letters, digits"),
    ('release: [{command: "sh -c \'x"}]', "x-berth.release.0.command", "cannot split"),
    ("smoke: [{method: GET}]", "x-berth.smoke.0", "needs 'path'"),
    ("smoke: [{path: 'x'}]", "x-berth.smoke.0.path", "must start with '/'"),
    ("smoke: [{path: '/a b'}]", "x-berth.smoke.0.path", "must start with '/'"),
    ("smoke: [{path: /a, method: TRACE}]", "x-berth.smoke.0.method", "is not one of"),
    ("smoke: [{path: /a, port: 70000}]", "x-berth.smoke.0.port", "<= 65535"),
    ("smoke: [{path: /a, status: 700}]", "x-berth.smoke.0.status", "<= 599"),
    ("smoke: [{path: /a, status: []}]", "x-berth.smoke.0.status", "list of 1 to 20"),
    ("smoke: [{path: /a, body_matches: '(a'}]", "smoke.0.body_matches", "RE2"),
    ("smoke: [{path: /a, body_matches: '(a)\\1'}]", "smoke.0.body_matches", "RE2"),
    ("smoke: [{path: /a, headers: {'X\\nY': v}}]", "smoke.0.headers", "header name"),
    ('smoke: [{path: /a, headers: {X: "a\\r\\nB: c"}}]', "smoke.0.headers.X", "line breaks"),
    ("smoke: [{path: /a, headers: {Host: evil}}]", "smoke.0.headers.Host", "set by Berth"),
    ("smoke: [{path: /a, response_headers: {X: '(?=a)'}}]", "response_headers.X", "RE2"),
    ("smoke: [{path: /a, when: bake}]", "x-berth.smoke.0.when", "needs x-berth.bake"),
    ("smoke: [{path: /a, when: later}]", "x-berth.smoke.0.when", "is not one of"),
    ("smoke: [{path: /a, timeout: 1h}]", "x-berth.smoke.0.timeout", "at most 300s"),
    ("hooks: {deploy: []}", "x-berth.hooks.deploy", "unknown key"),
    ("hooks: {start: [{}]}", "x-berth.hooks.start.0", "exactly one of"),
    ("hooks: {start: [{command: x, url: 'http://a'}]}", "hooks.start.0", "exactly one of"),
    ("hooks: {success: [{url: 'ftp://a/b'}]}", "x-berth.hooks.success.0.url", "http://"),
    ("hooks: {success: [{url: 'http://a/\\nb'}]}", "x-berth.hooks.success.0.url", "http://"),
    ('hooks: {success: [{url: "http://a/\\r\\nX: y"}]}', "x-berth.hooks.success.0.url", "http://"),
    ("hooks: {success: [{url: 'http://a b/'}]}", "x-berth.hooks.success.0.url", "http://"),
    ("hooks: {success: [{command: x, required: true}]}", "success.0.required", "only a start"),
    ("hooks: {start: [{command: x, required: maybe}]}", "start.0.required", "true or false"),
]


@pytest.mark.parametrize(("extra", "field", "fragment"), BAD)
def test_bad_values_name_file_line_and_field(extra: str, field: str, fragment: str) -> None:
    text = _problems(extra)
    field = re.sub(r"\.(\d+)", r"[\1]", field)  # how a problem spells a list index
    assert "c.yml:" in text and field in text and fragment in text, text


def test_too_many_entries_are_refused_without_reading_them() -> None:
    many = "[" + ", ".join(["{command: x}"] * 21) + "]"
    assert "at most 20 entries" in _problems(f"release: {many}")


def test_huge_maps_and_lists_are_refused_with_one_error() -> None:
    codes = "[" + ", ".join(["999"] * 10_000) + "]"
    text = _problems(f"smoke: [{{path: /a, status: {codes}}}]")
    assert text.count("\n") == 0 and "list of 1 to 20" in text
    headers = "{" + ", ".join(f"H{i}: v" for i in range(5000)) + "}"
    text = _problems(f"smoke: [{{path: /a, headers: {headers}}}]")
    assert text.count("\n") == 0 and "at most 50 headers" in text


def test_a_smoke_check_needs_a_port_when_the_service_has_no_health_or_upstream() -> None:
    compose = HEAD.replace("      upstream: {name: api_up, port: 8000}\n", "") + (
        "      smoke: [{path: /a}]\n"
    )
    files = reader({DESIRED: BASE_DESIRED, COMPOSE: compose})
    with pytest.raises(ConfigError) as err:
        build_config([(DESIRED, BASE_DESIRED)], environ={}, files=files)
    assert "x-berth.smoke[0]" in str(err.value) and "needs 'port'" in str(err.value)


@pytest.mark.parametrize("key", ["release", "smoke", "hooks"])
def test_desired_cannot_set_them(key: str) -> None:
    desired = BASE_DESIRED + f"    {key}: [{{command: [sh, -c, 'rm -rf /']}}]\n"
    files = reader({DESIRED: desired, COMPOSE: _compose("")})
    with pytest.raises(ConfigError) as err:
        build_config([(DESIRED, desired)], environ={}, files=files)
    assert f"services.api.{key}" in str(err.value), str(err.value)


# -- fuzz: whatever the three keys hold, the load succeeds or names its problems --------------

_TASK_KEYS = st.sampled_from(
    [
        "name", "command", "timeout", "path", "method", "port", "headers", "body", "status",
        "body_matches", "response_headers", "when", "start", "success", "rollback", "url",
        "required", "Host", "X-A", "1", "~", "true",
    ]
)  # fmt: skip
_TASK_SCALARS = st.sampled_from(
    [
        "x", "'a b'", "''", "/ok", "'/a\\r\\nb'", "GET", "post", "TRACE", "0", "-1", "65536",
        "8000", "200", "'599'", "1e400", ".nan", "true", "maybe", "null", "5s", "0s", "99h",
        "'(a+)+$'", "'(?=x)'", "'\\\\1'", "'http://h/p'", "'ftp://h'", "'http://u:p@h:99999/'",
        "'https://'", "before", "bake", "both", "[]", "{}", "'${A:-x}'", "'$${B}'",
    ]
)  # fmt: skip


def _task_value(depth: int) -> st.SearchStrategy[str]:
    if depth <= 0:
        return _TASK_SCALARS
    child = _task_value(depth - 1)
    mapping = st.lists(st.tuples(_TASK_KEYS, child), max_size=4).map(
        lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
    )
    seq = st.lists(child, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
    return st.one_of(_TASK_SCALARS, mapping, seq)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(["release", "smoke", "hooks"]), _task_value(3), st.booleans())
def test_any_value_loads_or_fails_with_located_problems(key: str, value: str, bake: bool) -> None:
    extra = ("bake: 5s\n" if bake else "") + f"{key}: {value}\n"
    compose = _compose(extra)
    files = reader({DESIRED: BASE_DESIRED, COMPOSE: compose})
    try:
        build_config([(DESIRED, BASE_DESIRED)], environ={"A": "1"}, files=files)
    except ConfigError as exc:
        assert exc.problems and all(p.file == COMPOSE and p.line for p in exc.problems), exc
        assert all(len(p.message) < 600 for p in exc.problems)
