"""Property-based fuzzing of the configuration loaders (hypothesis, bounded in CI).

The property is totality: whatever text a desired file, a compose file or a `.env` holds,
loading either succeeds or raises ConfigError with located problems; it never raises
anything else, never hangs, and its messages stay short. Inputs are built from YAML and
compose fragments (keys Berth knows, tags, anchors, aliases, interpolation, odd numbers,
non-ASCII digits) so the search reaches deep into the translator instead of stopping at
the first syntax error, plus raw text for the parser itself.
"""

from __future__ import annotations

import contextlib
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.compose.interpolate import (
    DotenvError,
    InterpolationError,
    interpolate,
    parse_dotenv,
)
from controller.core.config import build_config
from controller.core.durations import parse_duration
from controller.core.reference import tag_problem
from controller.errors import ConfigError
from tests.fakes_files import MemoryTree

DESIRED, COMPOSE = "/r/desired/app.yaml", "/r/compose/c.yml"
FUZZ = settings(
    max_examples=300,
    deadline=None,  # the bound is asserted per example below, on wall time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # CI runs the same examples every time; local runs can vary the seed
)

SCALARS = st.sampled_from(
    [
        "1",
        "-1",
        "0",
        "1e400",
        ".inf",
        "-.inf",
        ".nan",
        "'nan'",
        "true",
        "null",
        "~",
        '"1.0.0"',
        "'١٢٣'",
        "10s",
        "1m30s",
        "-5s",
        "200h",
        "99999999999999999999999",
        "'${A:-${B:-x}}'",
        "'${'",
        "'$${x}'",
        "!reset []",
        "!override {}",
        "!foo bar",
        "!!binary aGk=",
        "*a",
        "&a x",
        "[1, 2]",
        "{k: v}",
        '"/health\\r\\nX: 1"',
        "'(a+)+$'",
        "'^(?=x)'",
        "./data:/data",
        "../desired:/x",
        "/etc/passwd",
        # the compose keys of include/extends/build/secrets/namespaces (values and peers)
        "api",
        "web",
        "'service:web'",
        "'service:api'",
        "'container:x'",
        "../desired/Dockerfile",
        "'seccomp=../desired/p.json'",
        "'host:10.0.0.1'",
        "'c 1:3 mr'",
        "x.yml",
        "'linux/amd64'",
        "every_1e400s",
    ]
)
KEYS = st.sampled_from(
    [
        "image",
        "tag",
        "replicas",
        "deploy",
        "healthcheck",
        "interval",
        "retries",
        "test",
        "x-berth",
        "upstream",
        "health",
        "path",
        "port",
        "name",
        "progress_deadline",
        "bake",
        "allowed_tags",
        "stop_grace_period",
        "cpus",
        "mem_limit",
        "ports",
        "expose",
        "volumes",
        "env_file",
        "environment",
        "networks",
        "depends_on",
        "command",
        "proxy",
        "service",
        "upstreams_file",
        "<<",
        "x-a",
        "extends",
        "file",
        "build",
        "context",
        "dockerfile",
        "dockerfile_inline",
        "args",
        "secrets",
        "configs",
        "source",
        "target",
        "network_mode",
        "volumes_from",
        "container_name",
        "scale",
        "profiles",
        "security_opt",
        "extra_hosts",
        "device_cgroup_rules",
        "blkio_config",
        "weight_device",
        "platform",
        "pull_policy",
        "gpus",
        "runtime",
        "mac_address",
        "pid",
        "links",
    ]
)


def _value(depth: int) -> st.SearchStrategy[str]:
    if depth <= 0:
        return SCALARS
    child = _value(depth - 1)
    mapping = st.lists(st.tuples(KEYS, child), min_size=0, max_size=4).map(
        lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
    )
    seq = st.lists(child, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
    return st.one_of(SCALARS, mapping, seq)


def _service() -> st.SearchStrategy[str]:
    return st.lists(st.tuples(KEYS, _value(2)), min_size=1, max_size=6).map(
        lambda kv: "".join(f"    {k}: {v}\n" for k, v in kv)
    )


COMPOSE_TEXT = st.builds(
    lambda api, web, top: (
        "services:\n  api:\n    image: reg/api\n" + api + "  web:\n    image: nginx\n" + web + top
    ),
    _service(),
    _service(),
    st.sampled_from(
        [
            "",
            "x-berth:\n  proxy: {service: web, upstreams_file: ../nginx/up.conf}\n",
            "x-berth: {proxy: !reset {}}\n",
            "networks: {n: {ipam: {config: [{subnet: 10.0.0.0/33}]}}}\n",
            "secrets: {s: {environment: A}, f: {file: ../desired/s}}\n",
            "configs: {c: {content: x}}\n",
            "include: [../desired/x.yml]\n",
            "include: [{path: x.yml, project_directory: ../desired}]\n",
            "name: {a: 1}\n",
            "x-b: &b {image: b}\nx-c: {<<: *b, extends: web}\n",
        ]
    ),
)
DESIRED_TEXT = st.builds(
    lambda tag, extra: (
        f"project: app\ncompose: ../compose/c.yml\nservices:\n  api:\n    tag: {tag}\n{extra}"
    ),
    SCALARS,
    st.lists(st.tuples(KEYS, _value(1)), max_size=3).map(
        lambda kv: "".join(f"    {k}: {v}\n" for k, v in kv)
    ),
)


class _Recording(MemoryTree):
    """Records every path the loaders try to read (the boundary is checked on them)."""

    reads: list[str]

    def read_text(self, path: str) -> str:
        self.reads.append(self.resolve(path))
        return super().read_text(path)


# files an `extends: {file: x.yml}`, `include`, `build` or secret may name; the ones in
# desired/ must never be read
_AROUND = {
    "/r/compose/x.yml": "services:\n  api: {image: a, extends: {file: x.yml, service: web}}\n",
    "/r/compose/Dockerfile": "FROM scratch\n",
    "/r/desired/x.yml": "services: {evil: {image: evil, privileged: true}}\n",
    "/r/desired/Dockerfile": "FROM evil\n",
    "/r/desired/p.json": "{}",
    "/r/desired/s": "secret",
}


def _load(desired: str, compose: str, dotenv: str | None = None) -> None:
    files = {**_AROUND, DESIRED: desired, COMPOSE: compose}
    if dotenv is not None:
        files["/r/compose/.env"] = dotenv
    tree = _Recording(files)
    tree.reads = []
    started = time.monotonic()
    try:
        build_config([(DESIRED, desired)], environ={"A": "1"}, files=tree)
    except ConfigError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file in files or p.file.startswith("/r/"), p
            assert len(p.message) < 600, p
    assert time.monotonic() - started < 5, "one load took more than 5 s"
    crossed = [r for r in tree.reads if r.startswith("/r/desired/") and r != DESIRED]
    assert not crossed, crossed


@FUZZ
@given(COMPOSE_TEXT, DESIRED_TEXT)
def test_structured_inputs_load_or_fail_cleanly(compose: str, desired: str) -> None:
    _load(desired, compose)


@FUZZ
@given(st.text(max_size=400), st.text(max_size=400))
def test_raw_text_loads_or_fails_cleanly(compose: str, desired: str) -> None:
    _load(desired, compose)


GOOD_COMPOSE = "services:\n  api:\n    image: reg/api\n    environment: {A: '${A}'}\n"
GOOD_DESIRED = 'compose: ../compose/c.yml\nservices:\n  api: {tag: "1"}\n'


@FUZZ
@given(st.text(max_size=300))
def test_dotenv_text_loads_or_fails_cleanly(dotenv: str) -> None:
    _load(GOOD_DESIRED, GOOD_COMPOSE, dotenv)


@FUZZ
@given(st.text(max_size=200))
def test_interpolation_and_dotenv_are_total(text: str) -> None:
    with contextlib.suppress(InterpolationError):
        interpolate(text, {"A": "1"}.get)
    with contextlib.suppress(DotenvError):
        parse_dotenv(text, environ={})


@FUZZ
@given(st.one_of(st.text(max_size=40), st.floats(), st.integers()))
def test_durations_are_finite_and_bounded(value: str | float | int) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert 0 <= seconds <= 7 * 24 * 3600


@FUZZ
@given(st.text(max_size=200))
def test_accepted_tags_are_ascii(tag: str) -> None:
    if tag_problem(tag) is None:
        assert tag.isascii() and "/" not in tag and " " not in tag
