"""Local test images, built offline with the Docker SDK (no registry is reachable here).

`berth-test/app:TAG` is `FROM scratch` plus Debian's static busybox: a 2 MB image whose
httpd starts in a fraction of a second, so rollout tests are fast and need no network.
Every applet is a hard link to `/bin/busybox` (no symlinks), so exec-form healthchecks
such as the one below find `wget` on PATH and `CMD-SHELL` finds `/bin/sh`.

The app listens on `port` (default 8000) and serves:

- `GET /health`         200 "ok" (depending on the mode, see below)
- `GET /version`, `/`   200 and the tag
- `GET /cgi-bin/slow?N` sleeps N seconds (default 4), then 200 and the tag
- `GET /cgi-bin/try`    200 and the tag (in `flaky` mode every 5th request answers 500)
- `POST /cgi-bin/echo`  reads the body, answers 200 "TAG LENGTH"

Modes (the `/version` of each answers the tag while the process runs):

- `good`       healthy at once
- `unhealthy`  httpd runs, `/health` answers 404 forever
- `crash`      exits 1 after about 0.3 s
- `slow`       `/health` answers only after 3 s
- `bake-fail`  healthy for about 6 s after start, then `/health` answers 404 forever
- `flaky`      healthy, but `/cgi-bin/try` fails 1 request in 5 (a canary's analysis sees it)

A working healthcheck for compose files (busybox wget crashes resolving host names, so use
the loopback address; `localhost` does not work)::

    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/health"]
      interval: 1s
      timeout: 1s
      retries: 2

The entrypoint is a shell script that traps SIGTERM: it stops the listener, lets in-flight
requests finish, and exits 0, so the image stops promptly with or without `init: true`.
Compose files in tests should still set `init: true` (busybox applets other than the
script do not handle signals as PID 1, and the init reaps the CGI processes).

`berth-test/base:bookworm` is a debootstrap (minbase) Debian rootfs with python3, FastAPI,
uvicorn, gunicorn, nginx-light with the Lua module (Berth's dynamic switch), curl,
ca-certificates and psycopg2 (the example API's database driver), imported with `docker
import`. `berth-test/postgres-base:bookworm` is another debootstrap rootfs with Debian's
PostgreSQL 15 only (kept out of the base: it is three times the base's size).
The rootfs tarball is cached under /var/cache/berth-rootfs, so rebuilding the image after a
`docker rmi` takes seconds. `berth-test/nginx:1` is built from a rootfs of its own,
`berth-test/nginx-base:bookworm` (minbase + nginx-light + the Lua module, without docs,
manuals or translations: 88 MB against the base's 196 MB, as every test swarm pulls it),
with `nginx -g 'daemon off;'`, STOPSIGNAL SIGQUIT for a graceful stop, logs to stdout/stderr.

Images are rebuilt only when missing or when their recipe changed: each carries the label
`berth.test.recipe` = hash of everything that went into it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.image_build import (
    RECIPE_LABEL,
    build_context,
    build_lock,
    client_of,
    current_recipe,
    rootfs_tarball,
    tar_context,
)
from tests.support.image_build import apt_mirror as apt_mirror

APP_REPOSITORY = "berth-test/app"
BASE_IMAGE = "berth-test/base:bookworm"
NGINX_IMAGE = "berth-test/nginx:1"
MODES = ("good", "unhealthy", "crash", "slow", "bake-fail", "flaky")
HEALTHCHECK = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/health"]

BASE_PACKAGES = (
    "python3",
    "python3-fastapi",
    "python3-uvicorn",
    "gunicorn",
    "nginx-light",
    "libnginx-mod-http-lua",
    "lua-cjson",
    "ca-certificates",
    "curl",
    # the example API's PostgreSQL driver (1.3 MB with libpq5). The list is part of the
    # base's recipe: changing it rebuilds the base (and what is built on it) without
    # touching the busybox app images, as a _RECIPE_VERSION bump would.
    "python3-psycopg2",
)
# PostgreSQL itself is NOT in the base: Debian's postgresql-15 brings LLVM (JIT), ICU and
# Perl, +346 MB, which every image on the base (nginx, Berth's own, pushed to each Swarm
# node) would carry. It gets its own rootfs, built only where the example stack's database
# is needed (berth-demo/postgres:15 is built FROM it).
# The edge image gets a rootfs of its own, slim (no docs, manuals or translations): every
# test swarm pulls it from a registry, and on the full base (python3, FastAPI...) it was
# 196 MB, ~19 s to push and ~10 s for each swarm's manager to pull.
NGINX_BASE_IMAGE = "berth-test/nginx-base:bookworm"
NGINX_BASE_PACKAGES = ("nginx-light", "libnginx-mod-http-lua", "lua-cjson")
POSTGRES_BASE_IMAGE = "berth-test/postgres-base:bookworm"
POSTGRES_BASE_PACKAGES = ("postgresql-15",)
_RECIPE_VERSION = "3"  # bump to force a rebuild of every test image
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def healthcheck(port: int = 8000) -> list[str]:
    """The exec-form healthcheck that works for the app image on `port`."""
    return ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}/health"]


def _busybox_path() -> Path:
    """Debian's busybox-static binary (the dynamic `busybox` package will not run in scratch)."""
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.is_file():
            data = candidate.read_bytes()
            if b"ld-linux" not in data[:8192] and b"/lib64/ld-" not in data[:8192]:
                return candidate
    raise RuntimeError(
        "a static busybox is needed for the test images: apt-get install busybox-static "
        "(scripts/ensure-docker.sh installs it)"
    )


# --------------------------------------------------------------------------- app image

_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY busybox /bin/sh
RUN ["/bin/busybox", "--install", "/bin"]
COPY rootfs/ /
ENV PATH=/bin
EXPOSE {port}
STOPSIGNAL SIGTERM
CMD ["/bin/sh", "/app/run"]
"""

# The entrypoint. SERVE starts httpd in the foreground as a child; on SIGTERM the listener
# is stopped first, and the forked per-connection httpd processes (in-flight requests)
# are given time to finish, like a real server's graceful shutdown.
_RUN = """\
#!/bin/sh
PORT={port}
mkdir -p /tmp
busy() {{
  for d in /proc/[0-9]*; do
    case "$(tr '\\0' ' ' < "$d/cmdline" 2>/dev/null)" in
      *"httpd -f"*) grep -q '^State:[[:space:]]*Z' "$d/status" 2>/dev/null || return 0 ;;
    esac
  done
  return 1
}}
term() {{
  [ -n "$HTTPD" ] && kill "$HTTPD" 2>/dev/null && wait "$HTTPD" 2>/dev/null
  i=0
  while [ "$i" -lt 300 ] && busy; do sleep 0.1; i=$((i+1)); done
  exit 0
}}
trap term TERM INT
/bin/busybox httpd -f -v -p "0.0.0.0:$PORT" -h /www &
HTTPD=$!
{mode_body}
while kill -0 "$HTTPD" 2>/dev/null; do wait "$HTTPD"; done
exit 1
"""

_MODE_BODIES = {
    "good": "echo ok > /www/health",
    "unhealthy": "rm -f /www/health",
    "crash": "sleep 0.3\necho 'berth-test/app: crash mode, exiting 1' >&2\nexit 1",
    "slow": "rm -f /www/health\n(sleep 3; echo ok > /www/health) &",
    "bake-fail": "echo ok > /www/health\n(sleep 6; rm -f /www/health) &",
    "flaky": "echo ok > /www/health\ntouch /tmp/flaky",
}

# GET /cgi-bin/try: 200 and the tag; in `flaky` mode every 5th request answers 500.
_TRY_CGI = """\
#!/bin/sh
v=$(cat /www/version)
if [ -e /tmp/flaky ]; then
  n=$(( $(cat /tmp/n 2>/dev/null || echo 0) + 1 ))
  echo "$n" > /tmp/n
  if [ $((n % 5)) = 0 ]; then
    printf 'Status: 500 Internal Server Error\\r\\n'
    printf 'Content-Type: text/plain\\r\\n\\r\\n%s failed\\n' "$v"
    exit 0
  fi
fi
printf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' "$v"
"""

_SLOW_CGI = """\
#!/bin/sh
n="${QUERY_STRING:-4}"
case "$n" in ''|*[!0-9.]*) n=4 ;; esac
sleep "$n"
printf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' "$(cat /www/version)"
"""

_ECHO_CGI = """\
#!/bin/sh
n="${CONTENT_LENGTH:-0}"
case "$n" in ''|*[!0-9]*) n=0 ;; esac
got=$(head -c "$n" | wc -c)
printf 'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n' "$(cat /www/version)" "$got"
"""


def _app_files(tag: str, mode: str, port: int) -> dict[str, tuple[bytes, int]]:
    """The build context: path -> (content, mode bits)."""
    return {
        "Dockerfile": (_DOCKERFILE.format(port=port).encode(), 0o644),
        "rootfs/app/run": (
            _RUN.format(port=port, mode_body=_MODE_BODIES[mode]).encode(),
            0o755,
        ),
        "rootfs/www/index.html": (f"{tag}\n".encode(), 0o644),
        "rootfs/www/version": (f"{tag}\n".encode(), 0o644),
        "rootfs/www/health": (b"ok\n", 0o644),
        "rootfs/www/cgi-bin/slow": (_SLOW_CGI.encode(), 0o755),
        "rootfs/www/cgi-bin/echo": (_ECHO_CGI.encode(), 0o755),
        "rootfs/www/cgi-bin/try": (_TRY_CGI.encode(), 0o755),
        "rootfs/tmp/.keep": (b"", 0o644),
    }


def _context_tar(files: Mapping[str, tuple[bytes, int]], busybox: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        entries = dict(files)
        entries["busybox"] = (busybox, 0o755)
        for name in sorted(entries):
            data, bits = entries[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = bits
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def ensure_app_image(
    tag: str, *, mode: str = "good", port: int = 8000, client: Any | None = None
) -> str:
    """Build `berth-test/app:TAG` in `mode` unless it exists with the same recipe.

    The mode is baked into the image, so use a distinct tag per mode (e.g. "2.0.0-bad"):
    asking for an existing tag with another mode rebuilds and retags it.
    """
    if mode not in _MODE_BODIES:
        raise ValueError(f"unknown app image mode {mode!r}; known: {', '.join(MODES)}")
    if not _TAG_RE.match(tag):
        raise ValueError(f"not a valid Docker tag: {tag!r}")
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")
    ref = f"{APP_REPOSITORY}:{tag}"
    busybox = _busybox_path().read_bytes()
    files = _app_files(tag, mode, port)
    digest = hashlib.sha256()
    digest.update(_RECIPE_VERSION.encode())
    digest.update(hashlib.sha256(busybox).digest())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name][0] + str(files[name][1]).encode())
    recipe = digest.hexdigest()[:24]
    api = client_of(client)
    if current_recipe(api, ref) == recipe:
        return ref
    with build_lock(ref):
        if current_recipe(api, ref) == recipe:
            return ref
        labels = {
            RECIPE_LABEL: recipe,
            "berth.test.mode": mode,
            "berth.test.tag": tag,
            "berth.test.port": str(port),
        }
        build_context(api, _context_tar(files, busybox), ref, labels)
    return ref


# --------------------------------------------------------------------------- base images


def ensure_base_image(ref: str = BASE_IMAGE, *, client: Any | None = None) -> str:
    """`berth-test/base:bookworm`: Debian minbase + python3/FastAPI/uvicorn/gunicorn/nginx."""
    return _ensure_rootfs_image(ref, "base", BASE_PACKAGES, client)


def ensure_postgres_base_image(ref: str = POSTGRES_BASE_IMAGE, *, client: Any | None = None) -> str:
    """`berth-test/postgres-base:bookworm`: Debian minbase + PostgreSQL 15 (postgresql-15)."""
    return _ensure_rootfs_image(ref, "postgres-base", POSTGRES_BASE_PACKAGES, client)


def ensure_nginx_base_image(ref: str = NGINX_BASE_IMAGE, *, client: Any | None = None) -> str:
    """`berth-test/nginx-base:bookworm`: a slim Debian minbase + nginx-light with Lua."""
    return _ensure_rootfs_image(ref, "nginx-base", NGINX_BASE_PACKAGES, client, slim=True)


def _ensure_rootfs_image(
    ref: str, kind: str, packages: tuple[str, ...], client: Any | None, *, slim: bool = False
) -> str:
    api = client_of(client)
    mirror = apt_mirror()
    parts: list[object] = [_RECIPE_VERSION, kind, sorted(packages)]
    if slim:
        parts.append("slim")
    recipe = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]
    if current_recipe(api, ref) == recipe:
        return ref
    with build_lock(ref):
        if current_recipe(api, ref) == recipe:
            return ref
        tarball = rootfs_tarball(mirror, packages, slim=slim)
        repository, _, tag = ref.rpartition(":")
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            f"LABEL {RECIPE_LABEL}={recipe}",
            'CMD ["/bin/bash"]',
        ]
        api.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=changes
        )
        if current_recipe(api, ref) != recipe:
            raise RuntimeError(f"docker import of {tarball} did not produce {ref}")
    return ref


_NGINX_DOCKERFILE = """\
FROM {base}
RUN rm -f /etc/nginx/sites-enabled/default \\
 && ln -sf /dev/stdout /var/log/nginx/access.log \\
 && ln -sf /dev/stderr /var/log/nginx/error.log \\
 && mkdir -p /var/www/html && echo ok > /var/www/html/index.html
COPY default.conf /etc/nginx/conf.d/default.conf
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
"""

_NGINX_DEFAULT = """\
server {
    listen 80 default_server;
    location = /nginx-health { return 200 "ok\\n"; }
    location / { root /var/www/html; }
}
"""


def ensure_nginx_image(tag: str = NGINX_IMAGE, *, client: Any | None = None) -> str:
    """nginx 1.22 (Debian's nginx-light) on the slim nginx rootfs; serves /nginx-health."""
    api = client_of(client)
    base = ensure_nginx_base_image(client=api)
    base_id = api.images.get(base).id
    files = {
        "Dockerfile": (_NGINX_DOCKERFILE.format(base=base).encode(), 0o644),
        "default.conf": (_NGINX_DEFAULT.encode(), 0o644),
    }
    digest = hashlib.sha256((_RECIPE_VERSION + base_id).encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name][0])
    recipe = digest.hexdigest()[:24]
    if current_recipe(api, tag) == recipe:
        return tag
    with build_lock(tag):
        if current_recipe(api, tag) == recipe:
            return tag
        build_context(api, tar_context(files), tag, {RECIPE_LABEL: recipe})
    return tag


def ensure_all(*, client: Any | None = None) -> dict[str, float]:
    """Build every test image; returns seconds spent per image (for `make images`)."""
    api = client_of(client)
    timings: dict[str, float] = {}
    for tag, mode in (("1.0.0", "good"), ("2.0.0", "good")):
        start = time.monotonic()
        timings[ensure_app_image(tag, mode=mode, client=api)] = time.monotonic() - start
    start = time.monotonic()
    timings[ensure_base_image(client=api)] = time.monotonic() - start
    start = time.monotonic()
    timings[ensure_nginx_image(client=api)] = time.monotonic() - start
    start = time.monotonic()  # the example database's (tests/integration/test_example_db.py)
    timings[ensure_postgres_base_image(client=api)] = time.monotonic() - start
    from tests.support.swarm_node import ensure_node_image  # the swarm tests' nodes

    start = time.monotonic()
    timings[ensure_node_image(client=api)] = time.monotonic() - start
    return timings


def main() -> int:
    for ref, seconds in ensure_all().items():
        print(f"{ref:40s} {seconds:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
