"""Hostile inputs: each gets a located error, within a bounded time, and nothing else.

These are the classes an attacker with write access to desired/ (or a careless compose
edit) reaches for: alias bombs, deep nesting, unknown YAML tags, unbounded interpolation,
non-finite and huge numbers, non-ASCII look-alike digits, huge replica counts, header
injection through a probe path, and regular expressions that backtrack exponentially.
tests/integration/test_cli_bad_inputs.py runs this table through `berth validate`, `plan`
and `apply` too (exit 1, file:line and field, no Docker call).
"""

from __future__ import annotations

import threading

import pytest

from controller.core.config import build_config
from controller.errors import ConfigError, Problem, printable
from tests.unit.test_bad_inputs import (
    BASE_COMPOSE,
    BASE_DESIRED,
    COMPOSE,
    DESIRED,
    Case,
    c,
    d,
    reader,
)

BOMB = "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + BOMB


def api(lines: str) -> str:
    """BASE_COMPOSE with `lines` added to service api from line 4 on."""
    return c("    image: reg/api\n", "    image: reg/api\n" + lines)


def xb(lines: str) -> str:
    """BASE_COMPOSE with `lines` added to api's x-berth from line 7 on."""
    return c(
        "      upstream: {name: api_up, port: 8000}\n",
        "      upstream: {name: api_up, port: 8000}\n" + lines,
    )


NESTED = "${A:-" * 2000 + "x" + "}" * 2000
HOSTILE = [
    Case("alias-bomb-desired", DESIRED, 10, "", "alias bomb", desired=BASE_DESIRED + BOMB),
    Case("alias-bomb-compose", COMPOSE, 19, "", "alias bomb", compose=BASE_COMPOSE + BOMB),
    Case(
        "deep-nesting-desired",
        DESIRED,
        70,
        "",
        "nested more than 64",
        desired=BASE_DESIRED + "x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 250)),
    ),
    Case(
        "deep-flow-nesting-compose",
        COMPOSE,
        15,
        "",
        "nested more than 64",
        compose=BASE_COMPOSE + "x-deep: " + "[" * 100_000 + "\n",
    ),
    Case(
        "tagged-sequence-desired",
        DESIRED,
        6,
        "",
        "YAML tag '!foo'",
        desired=BASE_DESIRED + "    replicas: !foo [a]\n",
    ),
    Case(
        "reset-tag-in-desired",
        DESIRED,
        5,
        "",
        "YAML tag '!reset'",
        desired=d('tag: "1.0.0"', 'tag: !reset "1.0.0"'),
    ),
    Case(
        "unknown-tag-compose",
        COMPOSE,
        4,
        "",
        "YAML tag '!env'",
        compose=api("    environment: !env {A: b}\n"),
    ),
    Case(
        "python-object-tag",
        COMPOSE,
        4,
        "",
        "not supported",
        compose=api("    command: !!python/object/apply:os.system ['id']\n"),
    ),
    Case(
        "binary-tag", COMPOSE, 4, "", "not supported", compose=api("    command: !!binary aGk=\n")
    ),
    Case(
        "nested-interpolation",
        COMPOSE,
        4,
        "services.api.command",
        "more than 16 nested",
        compose=api(f"    command: '{NESTED}'\n"),
    ),
    Case(
        "inf-stop-grace",
        COMPOSE,
        4,
        "services.api.stop_grace_period",
        "finite",
        compose=api("    stop_grace_period: .inf\n"),
    ),
    Case(
        "nan-healthcheck-interval",
        COMPOSE,
        6,
        "services.api.healthcheck.interval",
        "finite",
        compose=api("    healthcheck:\n      test: ['CMD', 'true']\n      interval: .nan\n"),
    ),
    Case("inf-cpus", COMPOSE, 4, "services.api.cpus", "finite", compose=api("    cpus: .inf\n")),
    Case(
        "nan-cpus-string",
        COMPOSE,
        4,
        "services.api.cpus",
        "finite",
        compose=api("    cpus: 'nan'\n"),
    ),
    Case(
        "huge-cpus-string",
        COMPOSE,
        4,
        "services.api.cpus",
        "finite",
        compose=api("    cpus: '1e400'\n"),
    ),
    Case(
        "nan-progress-deadline",
        COMPOSE,
        7,
        "services.api.x-berth.progress_deadline",
        "finite",
        compose=xb("      progress_deadline: .nan\n"),
    ),
    Case(
        "inf-bake",
        COMPOSE,
        7,
        "services.api.x-berth.bake",
        "negative",
        compose=xb("      bake: -.inf\n"),
    ),
    Case(
        "duration-over-a-week",
        COMPOSE,
        7,
        "services.api.x-berth.drain_timeout",
        "168h",
        compose=xb("      drain_timeout: 200h\n"),
    ),
    Case(
        "arabic-digits-duration",
        COMPOSE,
        4,
        "services.api.stop_grace_period",
        "invalid",
        compose=api("    stop_grace_period: \u0661\u0660s\n"),
    ),
    Case(
        "replicas-billion-desired",
        DESIRED,
        6,
        "services.api.replicas",
        "0-256",
        desired=BASE_DESIRED + "    replicas: 1000000000\n",
    ),
    Case(
        "replicas-billion-compose",
        COMPOSE,
        5,
        "services.api.deploy.replicas",
        "<= 256",
        compose=api("    deploy:\n      replicas: 1000000000\n"),
    ),
    Case(
        "replicas-arabic-digits",
        COMPOSE,
        5,
        "services.api.deploy.replicas",
        "integer",
        compose=api("    deploy:\n      replicas: '١٢'\n"),
    ),
    Case(
        "huge-integer",
        COMPOSE,
        6,
        "services.api.healthcheck.retries",
        "<= ",
        compose=api(
            "    healthcheck:\n      test: ['CMD', 'true']\n"
            "      retries: 99999999999999999999999\n"
        ),
    ),
    Case(
        "tag-arabic-digits", DESIRED, 5, "services.api.tag", "ASCII", desired=d('"1.0.0"', '"١٢٣"')
    ),
    Case(
        "tag-accented", DESIRED, 5, "services.api.tag", "ASCII", desired=d('"1.0.0"', '"vérsion"')
    ),
    Case(
        "tag-too-long",
        DESIRED,
        5,
        "services.api.tag",
        "1-128",
        desired=d('"1.0.0"', '"' + "a" * 129 + '"'),
    ),
    Case(
        "service-name-bad",
        COMPOSE,
        8,
        "services.we b",
        "compose-spec",
        compose=BASE_COMPOSE.replace("  web:\n", "  we b:\n").replace(
            "service: web", "service: we b"
        ),
    ),
    Case(
        "service-name-unicode",
        COMPOSE,
        8,
        "services.wéb",
        "compose-spec",
        compose=c("  web:\n", "  wéb:\n"),
    ),
    Case(
        "desired-service-name-bad",
        DESIRED,
        6,
        "services.a/b",
        "compose service name",
        desired=BASE_DESIRED + "  a/b:\n    tag: x\n",
    ),
    Case(
        "probe-path-crlf",
        COMPOSE,
        8,
        "services.api.x-berth.health.path",
        "no spaces",
        compose=xb('      health:\n        path: "/health\\r\\nX-Injected: 1"\n'),
    ),
    Case(
        "probe-path-space",
        COMPOSE,
        8,
        "services.api.x-berth.health.path",
        "no spaces",
        compose=xb('      health:\n        path: "/a b"\n'),
    ),
    Case(
        "redos-pattern-long-tag",
        DESIRED,
        5,
        "services.api.tag",
        "does not match",
        compose=c("'^\\d+\\.\\d+\\.\\d+$'", "'(a+)+$'"),
        desired=d('"1.0.0"', '"' + "a" * 60 + '-"'),
    ),
    Case(
        "lookahead-pattern",
        COMPOSE,
        7,
        "services.api.x-berth.allowed_tags",
        "RE2",
        compose=c("'^\\d+\\.\\d+\\.\\d+$'", "'^(?=1)\\d+$'"),
    ),
    Case(
        "backreference-pattern",
        COMPOSE,
        7,
        "services.api.x-berth.allowed_tags",
        "RE2",
        compose=c("'^\\d+\\.\\d+\\.\\d+$'", "'^(a)\\1$'"),
    ),
    Case(
        "pattern-too-long",
        COMPOSE,
        7,
        "services.api.x-berth.allowed_tags",
        "longer than",
        compose=c("'^\\d+\\.\\d+\\.\\d+$'", "'" + "a" * 1001 + "'"),
    ),
    Case(
        "healthy-threshold-huge",
        COMPOSE,
        8,
        "services.api.x-berth.health.healthy_threshold",
        "<= 100",
        compose=xb("      health:\n        healthy_threshold: 100000\n"),
    ),
]


HOSTILE += [
    Case(
        "nul-in-compose-path",
        DESIRED,
        2,
        "compose",
        "NUL byte",
        desired=d("compose: ../compose/c.yml", 'compose: "../compose/c\\0.yml"'),
    ),
    Case(
        "nul-in-env-file",
        COMPOSE,
        4,
        "services.api.env_file",
        "NUL byte",
        compose=api('    env_file: "a\\0b"\n'),
    ),
    Case(
        "nul-in-bind-source",
        COMPOSE,
        4,
        "services.api.volumes[0]",
        "NUL byte",
        compose=api('    volumes: ["./x\\0y:/d"]\n'),
    ),
    Case(
        "yaml-1.1-base-60-desired",
        DESIRED,
        2,
        "",
        "%YAML 1.1 is not supported",
        desired="%YAML 1.1\n---\n" + BASE_DESIRED + "    replicas: 1" + ":59" * 3000 + "\n",
    ),
    Case(
        "yaml-1.1-base-60-compose",
        COMPOSE,
        2,
        "",
        "%YAML 1.1 is not supported",
        compose="%YAML 1.1\n---\n" + api("    deploy: {replicas: 1" + ":59" * 3000 + "}\n"),
    ),
    Case(
        "reset-tag-on-a-key",
        COMPOSE,
        3,
        "",
        "applies to values, not to mapping keys",
        compose=c("  api:\n", "  api:\n    !reset environment: {A: '1'}\n"),
    ),
    Case(
        "too-many-services-in-desired",
        DESIRED,
        3,
        "services",
        "at most 512",
        desired=BASE_DESIRED + "".join(f"  s{i}: {{tag: a}}\n" for i in range(3600)),
    ),
    Case(
        "env-copied-into-every-service",
        COMPOSE,
        933,  # the first service past 16 MiB: 932 services of 2 x 9,002 characters
        "services.s931.environment",
        "pass 16777216 characters",
        compose=c(
            "services:\n",
            "services:\n"
            + "".join(f"  s{i}: {{image: b, environment: [A, B]}}\n" for i in range(1000)),
        ),
        extra={"/r/compose/.env": "A=" + "x" * 9000 + "\nB=" + "y" * 9000 + "\n"},
    ),
    Case(
        "env-entry-past-128k",
        COMPOSE,
        4,
        "services.api.environment",
        "cannot get more than 128 KiB",
        compose=api("    environment: [A]\n"),
        extra={"/r/compose/.env": "A=" + "x" * 140_000 + "\n"},
    ),
    Case(
        "nul-in-command",
        COMPOSE,
        4,
        "services.api.command[0]",
        "NUL character",
        compose=api('    command: ["a\\0b"]\n'),
    ),
    Case(
        "nul-in-label-value",
        COMPOSE,
        4,
        "services.api.labels.a",
        "NUL character",
        compose=api('    labels: {a: "x\\0"}\n'),
    ),
    Case(
        "nul-in-env-value",
        COMPOSE,
        4,
        "services.api.environment.A",
        "NUL character",
        compose=api('    environment: {A: "x\\0y"}\n'),
    ),
    Case(
        "healthcheck-interval-below-1ms",
        COMPOSE,
        4,
        "services.api.healthcheck.interval",
        "at least 1ms",
        compose=api('    healthcheck: {test: ["CMD", "true"], interval: 1us}\n'),
    ),
    Case(
        "oom-score-adj-out-of-range",
        COMPOSE,
        4,
        "services.api.oom_score_adj",
        "5000",
        compose=api("    oom_score_adj: 5000\n"),
    ),
    Case(
        "extra-hosts-newline",
        COMPOSE,
        4,
        "services.api.extra_hosts[0]",
        "expected HOST:IP",
        compose=api('    extra_hosts: ["a\\nb:1.2.3.4"]\n'),
    ),
    Case(
        "port-host-ip-typo",
        COMPOSE,
        4,
        "services.api.ports[0]",
        "not an IP address",
        compose=api('    ports: ["127.0.0.l:8080:8000"]\n'),
    ),
    Case(
        "port-host-ip-name-long-syntax",
        COMPOSE,
        4,
        "services.api.ports[0]",
        "not an IP address",
        compose=api("    ports: [{target: 8000, published: 8080, host_ip: localhost}]\n"),
    ),
    Case(
        "env-file-unknown-format",
        COMPOSE,
        4,
        "services.api.env_file[0].format",
        "unknown format",
        compose=api("    env_file: [{path: ./x.env, format: bogus}]\n"),
    ),
    Case(
        "env-empty-name",
        COMPOSE,
        4,
        "services.api.environment",
        "invalid variable name",
        compose=api('    environment: ["=foo"]\n'),
    ),
    Case(
        "ipv4-address-not-an-address",
        COMPOSE,
        4,
        "services.api.networks.default.ipv4_address",
        "not an IPv4 address",
        compose=api("    networks: {default: {ipv4_address: foo}}\n"),
    ),
    Case(
        "network-host-with-aliases",
        COMPOSE,
        4,
        "services.api.networks.h",
        "takes no service aliases",
        compose=api("    networks: {h: {}}\n").replace(
            "name: app\n", "name: app\nnetworks:\n  h: {external: true, name: host}\n"
        ),
    ),
    Case(
        "mem-limit-below-6mb",
        COMPOSE,
        4,
        "services.api.mem_limit",
        "at least 6MB",
        compose=api("    mem_limit: 1k\n"),
    ),
    Case(
        "mem-reservation-above-limit",
        COMPOSE,
        5,
        "services.api.mem_reservation",
        "above the memory limit",
        compose=api("    mem_limit: 100m\n    mem_reservation: 200m\n"),
    ),
    Case(
        "memswap-without-limit",
        COMPOSE,
        4,
        "services.api.memswap_limit",
        "needs a memory limit",
        compose=api("    memswap_limit: 100m\n"),
    ),
    Case(
        "ulimit-soft-above-hard",
        COMPOSE,
        4,
        "services.api.ulimits.nofile",
        "above the hard limit",
        compose=api("    ulimits: {nofile: {soft: 2000, hard: 1000}}\n"),
    ),
    Case(
        "ulimit-unknown-name",
        COMPOSE,
        4,
        "services.api.ulimits.foo",
        "unknown ulimit",
        compose=api("    ulimits: {foo: 5}\n"),
    ),
    Case(
        "stop-signal-unknown",
        COMPOSE,
        4,
        "services.api.stop_signal",
        "unknown signal",
        compose=api("    stop_signal: SIGFOO\n"),
    ),
    Case(
        "working-dir-relative",
        COMPOSE,
        4,
        "services.api.working_dir",
        "absolute path",
        compose=api("    working_dir: app/rel\n"),
    ),
    Case(
        "cap-add-unknown",
        COMPOSE,
        4,
        "services.api.cap_add[0]",
        "unknown capability",
        compose=api("    cap_add: [CAP_FOO]\n"),
    ),
    Case(
        "volume-target-root",
        COMPOSE,
        4,
        "services.api.volumes[0]",
        "root '/'",
        compose=api('    volumes: ["./x:/"]\n'),
    ),
    Case(
        "extra-hosts-bad-ip",
        COMPOSE,
        4,
        "services.api.extra_hosts[0]",
        "expected HOST:IP",
        compose=api('    extra_hosts: ["h:1.2.3"]\n'),
    ),
    Case(
        "hostname-too-long",
        COMPOSE,
        4,
        "services.api.hostname",
        "not a host name",
        compose=api(
            "    hostname: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
        ),
    ),
    Case(
        "cpus-below-0.01",
        COMPOSE,
        4,
        "services.api.cpus",
        "at least 0.01",
        compose=api("    cpus: 0.001\n"),
    ),
    Case(
        "device-relative-container-path",
        COMPOSE,
        4,
        "services.api.devices[0]",
        "must be absolute",
        compose=api('    devices: ["/dev/null:rel/path"]\n'),
    ),
    Case(
        "tmpfs-mode-not-octal",
        COMPOSE,
        4,
        "services.api.volumes[0].tmpfs.mode",
        "octal file mode",
        compose=api('    volumes: [{type: tmpfs, target: /t, tmpfs: {mode: "99"}}]\n'),
    ),
    Case(
        "proxy-command-unbalanced-quote",
        COMPOSE,
        12,
        "x-berth.proxy.test_command",
        "cannot split into arguments",
        compose=c(
            "    service: web\n", '    test_command: "nginx -t \'x"\n    reload_command: x\n'
        ),
    ),
    Case(
        "health-interval-1ns",
        COMPOSE,
        7,
        "services.api.x-berth.health.interval",
        "at least 10ms",
        compose=xb("      health: {path: /h, interval: 1ns}\n"),
    ),
    Case(
        "progress-deadline-zero",
        COMPOSE,
        7,
        "services.api.x-berth.progress_deadline",
        "greater than 0",
        compose=xb("      progress_deadline: 0s\n"),
    ),
    Case(
        "upstreams-file-is-the-compose-file",
        COMPOSE,
        13,
        "x-berth.proxy.upstreams_file",
        "must be an nginx .conf file",
        compose=c("upstreams_file: ../nginx/up.conf", "upstreams_file: ./c.yml"),
    ),
    Case(
        "sysctl-not-namespaced",
        COMPOSE,
        4,
        "services.api.sysctls.kernel.foo",
        "not a namespaced sysctl",
        compose=api("    sysctls: {kernel.foo: '1'}\n"),
    ),
    Case(
        "log-option-unknown",
        COMPOSE,
        4,
        "services.api.logging.options.foo",
        "unknown json-file log option",
        compose=api("    logging: {driver: json-file, options: {max-size: 10m, foo: bar}}\n"),
    ),
    Case(
        "log-max-size-not-a-size",
        COMPOSE,
        4,
        "services.api.logging.options.max-size",
        "not a size",
        compose=api("    logging: {driver: json-file, options: {max-size: abc}}\n"),
    ),
    Case(
        "huge-compose-path",
        DESIRED,
        2,
        "compose",
        "longer than 4096",
        desired=d("compose: ../compose/c.yml", "compose: ../" + "a/" * 3000 + "c.yml"),
    ),
    Case(
        "escape-sequence-in-path",
        DESIRED,
        2,
        "compose",
        "\\x1b",
        desired=d("compose: ../compose/c.yml", 'compose: "/etc/\\e[31mx.yml"'),
    ),
]


LONG = "x" * 60000
STRING_BOMB = f'x: &a "{LONG}"\ny: &b [' + ", ".join(["*a"] * 100) + "]\n"
STRING_BOMB += "z: &c [" + ", ".join(["*b"] * 100) + "]\n"
HOSTILE += [
    Case(
        "string-bomb-in-replicas",
        DESIRED,
        3,
        "",
        "alias bomb",
        desired=d('tag: "1.0.0"', 'tag: "1.0.0"\n    replicas: [*c, *c, *c]').replace(
            "project: app\n", "project: app\n" + STRING_BOMB
        ),
    ),
    Case(
        "string-bomb-under-duplicate-key",
        DESIRED,
        2,
        "",
        "alias bomb",
        desired=STRING_BOMB + "w: [*c, *c]\nw: 1\n" + BASE_DESIRED,
    ),
    Case(
        "duplicate-key-long-value",
        DESIRED,
        2,
        "",
        "duplicate key",
        desired=f'w: "{LONG}"\nw: 1\n' + BASE_DESIRED,
    ),
    Case(
        "complex-key-sequence",
        DESIRED,
        6,
        "",
        "cannot be a mapping key",
        desired=BASE_DESIRED + "? [[a]]\n: 1\n",
    ),
    Case(
        "complex-key-mapping",
        COMPOSE,
        16,
        "",
        "cannot be a mapping key",
        compose=BASE_COMPOSE + "x-a:\n  ? {a: 1}\n  : 1\n",
    ),
    Case(
        "complex-key-by-alias",
        DESIRED,
        7,
        "",
        "cannot be a mapping key",
        desired=BASE_DESIRED + "x: &k [a]\ny: {*k : 1}\n",
    ),
    Case(
        "recursive-merge-key",
        DESIRED,
        5,
        "",
        "refers to a node that contains it",
        desired="project: app\ncompose: ../compose/c.yml\nservices: &s\n  api:\n    <<: *s\n",
    ),
    Case(
        "surrogate-in-compose-path",
        DESIRED,
        2,
        "compose",
        "not valid Unicode",
        desired=d("compose: ../compose/c.yml", 'compose: "../compose/\\ud800.yml"'),
    ),
    Case(
        "integer-4301-digits",
        DESIRED,
        6,
        "",
        "integer with more than 30",
        desired=BASE_DESIRED + "    replicas: " + "9" * 4301 + "\n",
    ),
    Case(
        "hex-integer-3600-digits",
        COMPOSE,
        4,
        "",
        "integer with more than 30",
        compose=api("    mem_limit: 0x" + "f" * 3600 + "\n"),
    ),
    Case(
        "nul-byte-in-file",
        DESIRED,
        5,
        "",
        "not allowed in YAML",
        desired=d('tag: "1.0.0"', 'tag: "1.0.0\x00"'),
    ),
    Case(
        "explicit-int-tag-arabic-digits",
        DESIRED,
        6,
        "",
        "YAML tag",
        desired=BASE_DESIRED + "    replicas: !!int '\u0661'\n",
    ),
    Case(
        "int-and-string-key-collide",
        COMPOSE,
        17,
        "",
        "duplicate key",
        compose=BASE_COMPOSE + "x-a:\n  1: a\n  '1': b\n",
    ),
    Case(
        "null-key",
        DESIRED,
        6,
        "",
        "null cannot be a mapping key",
        desired=BASE_DESIRED + "  ~:\n    tag: x\n",
    ),
    Case(
        "too-many-compose-files",
        DESIRED,
        2,
        "compose",
        "at most 16",
        desired=d(
            "compose: ../compose/c.yml", "compose: [" + ", ".join(["../compose/c.yml"] * 17) + "]"
        ),
    ),
    Case(
        "same-compose-file-twice",
        DESIRED,
        2,
        "compose[1]",
        "already names",
        desired=d("compose: ../compose/c.yml", "compose: [../compose/c.yml, ../compose/./c.yml]"),
    ),
]


CHAIN = "".join(f"  s{i}:\n    image: busybox\n    depends_on: [s{i + 1}]\n" for i in range(1200))
HOSTILE += [  # operator files: a careless edit must not stall or crash Berth either
    Case(
        "port-range-bomb",
        COMPOSE,
        4,
        "services.api.ports[1]",
        "more than 4096 ports",
        compose=api('    ports: ["1-4000:1-4000", "5001-6000:5001-6000"]\n'),
    ),
    Case(
        "port-digits-5000",
        COMPOSE,
        4,
        "services.api.ports[0]",
        "invalid",
        compose=api(f'    ports: ["{"9" * 5000}:80"]\n'),
    ),
    Case(
        "expose-digits-5000",
        COMPOSE,
        4,
        "services.api.expose[0]",
        "invalid",
        compose=c('expose: ["8000"]', f'expose: ["{"9" * 5000}"]'),
    ),
    Case(
        "restart-digits-5000",
        COMPOSE,
        4,
        "services.api.restart",
        "on-failure[:N]",
        compose=api(f'    restart: "on-failure:{"9" * 5000}"\n'),
    ),
    Case(
        "many-volumes-quadratic",
        COMPOSE,
        4,
        "services.api.volumes[20000]",
        "duplicate mount",
        # `/v1/` is not compose's key `/v1` (so not settled as a redefinition, which is
        # linear too), but the same mount point: the engine would refuse both
        compose=api("    volumes: [" + ", ".join(f"/v{i}" for i in range(20000)) + ", /v1/]\n"),
    ),
    Case(
        "depends-on-chain-1200",
        COMPOSE,
        3601,
        "services.s1199.depends_on.s1200",
        "not another service",
        compose=BASE_COMPOSE.replace("services:\n", "services:\n" + CHAIN, 1),
    ),
    Case(
        "device-options-list",
        COMPOSE,
        9,
        "services.api.deploy.resources.reservations.devices[0].options",
        "must be a mapping",
        compose=api(
            "    deploy:\n      resources:\n        reservations:\n"
            "          devices:\n            - capabilities: [gpu]\n"
            "              options: [a]\n"
        ),
    ),
    Case(
        "extra-hosts-nested-map",
        COMPOSE,
        5,
        "services.api.extra_hosts.a",
        "must be a list of strings",
        compose=api("    extra_hosts:\n      a: {b: c}\n"),
    ),
    Case(
        "sysctls-list-value",
        COMPOSE,
        5,
        "services.api.sysctls.net.core.somaxconn",
        "must be a string",
        compose=api("    sysctls:\n      net.core.somaxconn: [1]\n"),
    ),
    Case(
        "healthcheck-disable-string",
        COMPOSE,
        5,
        "services.api.healthcheck.disable",
        "true or false",
        compose=api("    healthcheck:\n      disable: 'yes please'\n"),
    ),
    Case(
        "dotenv-doubling-bomb",
        "/r/compose/.env",
        16,
        "",
        "grows past",
        extra={"/r/compose/.env": "A=" + "x" * 16 + "\n" + "A=$A$A\n" * 40},
    ),
    Case(
        "interpolation-growth-bomb",
        COMPOSE,
        22,
        "services.api.environment[17]",
        "characters",
        compose=api(
            "    environment:\n"
            + "".join(f'      - "X{i}=${{A}}${{A}}${{A}}${{A}}"\n' for i in range(60))
        ),
        extra={"/r/compose/.env": "A=" + "x" * 60000 + "\n"},
    ),
]


def load_within(case: Case, seconds: float = 10.0) -> list[tuple[str, int | None, str, str]]:
    files = {DESIRED: case.desired, COMPOSE: case.compose, **case.extra}
    out: list[tuple[str, int | None, str, str]] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            build_config([(DESIRED, case.desired)], environ={}, files=reader(files))
        except ConfigError as exc:
            out.extend((p.file, p.line, p.field, p.message) for p in exc.problems)
        except BaseException as exc:  # a crash is a failure of this test, reported below
            errors.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(seconds), f"{case.id}: not answered within {seconds} s"
    assert not errors, f"{case.id}: crashed with {errors[0]!r}"
    return out


def test_enough_hostile_cases() -> None:
    assert len(HOSTILE) >= 50


def test_quoted_dotenv_value_over_many_lines_is_linear() -> None:
    """A quoted value spanning 30,000 lines used to be re-scanned at every line."""
    case = Case(
        "dotenv-long-quote",
        COMPOSE,
        None,
        "",
        "",
        extra={"/r/compose/.env": 'A="' + "\n" * 30000 + '"\n'},
    )
    assert load_within(case, seconds=5) == []


@pytest.mark.parametrize("case", HOSTILE, ids=[c.id for c in HOSTILE])
def test_hostile_input_is_a_located_error(case: Case) -> None:
    problems = load_within(case)
    assert problems, f"{case.id}: accepted"
    want = (case.file, case.line, case.field)
    hits = [p for p in problems if p[:3] == want]
    assert hits, f"want {want}, got {problems}"
    assert any(case.fragment in printable(p[3]) for p in hits), hits
    assert all(len(p[3]) < 400 for p in problems), "messages must stay short (no echo)"


def test_timestamp_looking_values_are_text_as_compose_reads_them() -> None:
    """ruamel builds datetimes from timestamp-looking scalars and raised on impossible ones
    (2001-13-45) with no line; compose (go-yaml, untyped) keeps them strings."""
    case = Case(
        "timestamps",
        COMPOSE,
        None,
        "",
        "",
        desired=d('tag: "1.0.0"', "tag: 2001-13-45"),
        compose=api("    labels: {when: 2001-12-14 21:59:43 +99:00, day: 2001-12-14}\n")
        + "x-when: 2001-13-45\n",
    )
    problems = load_within(case)
    assert not [p for p in problems if "cannot be read" in p[3]], problems
    # the tag is a valid Docker tag once it is text; allowed_tags then refuses it, located
    assert all(p[1] is not None for p in problems), problems


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u202e", "\u2066", "\u200b", "\ufeff"])
def test_messages_escape_characters_that_move_or_hide_text(char: str) -> None:
    """A key or value from desired/ must not forge a line or reorder text in plain output
    and logs (line separators, bidi overrides, zero-width characters)."""
    case = Case(
        "unicode-" + hex(ord(char)),
        DESIRED,
        None,
        "",
        "",
        desired=BASE_DESIRED + f'"x{char}ok: all fine": 1\n',
    )
    problems = load_within(case)
    assert problems
    for p in problems:
        shown = str(Problem(*p))
        assert char not in shown, repr(shown)
        assert f"\\u{ord(char):04x}" in shown, repr(shown)


def _load(  # type: ignore[no-untyped-def]
    compose: str,
    desired: str = BASE_DESIRED,
    extra: dict[str, str] | None = None,
    *,
    no_allowed_tags: bool = False,
):
    if no_allowed_tags:
        compose = compose.replace("      allowed_tags: '^\\d+\\.\\d+\\.\\d+$'\n", "")
    files = {DESIRED: desired, COMPOSE: compose, **(extra or {})}
    return build_config([(DESIRED, desired)], environ={}, files=reader(files))


def _api_host(compose: str, **kw: object) -> dict[str, object]:
    cfg = _load(compose, **kw)  # type: ignore[arg-type]
    api = next(t for t in cfg.targets if t.service == "api")
    return api.spec.create.get("HostConfig", {})  # type: ignore[no-any-return]


def test_errors_never_print_a_value_that_came_from_dotenv() -> None:
    case = Case(
        "secret",
        COMPOSE,
        4,
        "services.api.mem_limit",
        "",
        compose=api('    mem_limit: "${SECRET}"\n'),
        extra={"/r/compose/.env": "SECRET=hunter2-s3cr3t\n"},
    )
    problems = load_within(case)
    assert problems and all("hunter2" not in p[3] for p in problems), problems
    assert any("***" in p[3] for p in problems), problems
    bad_line = Case(
        "dotenv", COMPOSE, None, "", "", extra={"/r/compose/.env": "DB_PASSWORD: hunter2\n"}
    )
    problems = load_within(bad_line)
    assert problems and all("hunter2" not in p[3] for p in problems), problems


def test_file_modes_are_octal_as_compose_reads_them() -> None:
    for mode, want in (("0777", 0o777), ('"1777"', 0o1777), ("511", 511)):
        host = _api_host(
            api(f"    volumes: [{{type: tmpfs, target: /t, tmpfs: {{mode: {mode}}}}}]\n")
        )
        mounts = host["Mounts"]
        assert mounts[0]["TmpfsOptions"]["Mode"] == want, (mode, mounts)  # type: ignore[index]


def test_env_file_raw_format_takes_values_as_written() -> None:
    cfg = _load(
        api("    env_file: [{path: ./raw.env, format: raw}]\n"),
        extra={"/r/compose/raw.env": 'A="quoted $HOME"\nB=x # y\n# comment\n'},
    )
    api_t = next(t for t in cfg.targets if t.service == "api")
    assert api_t.spec.create["Env"] == ['A="quoted $HOME"', "B=x # y"]


def test_a_fixed_address_means_stop_first_and_one_replica() -> None:
    from controller.core.plan import ActionKind, ServiceAction
    from controller.core.rollout_config import config_for

    compose = api("    networks: {front: {ipv4_address: 172.28.0.5}}\n").replace(
        "name: app\n",
        "name: app\nnetworks:\n  front:\n    ipam: {config: [{subnet: 172.28.0.0/16}]}\n",
    )
    cfg = _load(compose)
    t = next(t for t in cfg.targets if t.service == "api")
    action = ServiceAction(t.project, t.service, ActionKind.REPLACE, "", t)
    assert config_for(action, None).strategy == "stop-first"
    with pytest.raises(ConfigError, match="one container can hold it"):
        _load(compose, desired=BASE_DESIRED + "    replicas: 2\n")
    outside = compose.replace("172.28.0.5", "10.0.0.5")
    with pytest.raises(ConfigError, match="not a host address"):
        _load(outside)


def test_hex_tags_and_shas_are_text_not_long_integers() -> None:
    sha = "3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a"
    cfg = _load(
        api(f"    environment:\n      GIT_SHA: {sha}\n"),
        desired=BASE_DESIRED.replace('tag: "1.0.0"', f"tag: {sha}"),
        no_allowed_tags=True,
    )
    t = next(t for t in cfg.targets if t.service == "api")
    assert f"GIT_SHA={sha}" in t.spec.create["Env"]


def test_upstream_names_are_unique_ignoring_case() -> None:
    compose = c(
        "  web:\n",
        "  api2:\n    image: reg/api2\n    expose: ['8000']\n"
        "    x-berth: {upstream: {name: API_UP, port: 8000}}\n  web:\n",
    )
    with pytest.raises(ConfigError, match="ignores case"):
        _load(compose)
