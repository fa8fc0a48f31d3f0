"""Changing a stack's upstream file, and getting the change into nginx: the two switches.

`publish_dynamic` records an upstream's new peer set, brings nginx onto the file's
structure (a reload only when that changed), sets the peers through the control socket
and then drains the peers it dropped. `publish_reload` writes the file, tests it, reloads
nginx and waits for the old workers. Both re-read the file under a per-file lock first:
rollouts of independent services of one stack run concurrently.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from controller.adapters.nginx import ContainerNginx, HostNginx, atomic_write, dir_lock
from controller.core.peers import PeerSet, by_revision, is_dynamic, parse_dynamic, routes
from controller.core.upstream import Backend, render_upstreams
from controller.errors import ProxyError
from controller.shell.rollout import dynamic

Healthy = Callable[[str], list[tuple[Backend, str]]]  # upstream name -> routable containers

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    """Threads of this process (rollouts in parallel), then other Berth processes."""
    with _locks_guard:
        lock = _locks.setdefault(path, threading.Lock())
    with lock, dir_lock(path):
        yield


def publish_dynamic(
    target: dynamic.Target,
    names: Sequence[str],
    upstream: str,
    build: Callable[[int], PeerSet],
    *,
    always: bool,
    drain_timeout: float,
) -> None:
    """Record the upstream's new peer set, get it into nginx, then drain the peers it
    dropped (outside the lock: other services' switches do not wait for this drain)."""
    with _lock(target.path):
        old_text = _read_text(target.path)
        sets = dynamic.recorded(old_text, names)
        old = sets[upstream]
        new = build(dynamic.next_gen(old))
        if old.same_routes(new) and not always and is_dynamic(old_text):
            return
        sets[upstream] = new
        want = dynamic.write(target, sets)
        try:
            dynamic.sync_structure(target, want, drain_timeout=drain_timeout)
            dynamic.apply(target, upstream, new)
        except Exception as exc:
            atomic_write(target.path, old_text)
            if old.sides:  # best effort: nginx back on what the file says again
                with contextlib.suppress(Exception):
                    dynamic.apply(target, upstream, replace(old, gen=dynamic.next_gen(new)))
            if isinstance(exc, ProxyError):
                raise
            raise ProxyError(f"nginx dynamic switch failed: {exc}") from exc
    dynamic.drain(target, old.addresses() - new.addresses(), timeout=drain_timeout)


def publish_reload(
    path: str,
    names: Sequence[str],
    upstream: str,
    backends: list[Backend],
    nginx: ContainerNginx | HostNginx | None,
    counted: Callable[[str], None],
    *,
    always: bool,
    drain_timeout: float,
) -> None:
    """The reload switch: write, test, reload, wait for the old workers."""
    with _lock(path):
        old_text = _read_text(path)
        upstreams: dict[str, list[Backend]] = {n: [] for n in names}
        upstreams.update(routes(old_text))
        upstreams[upstream] = backends
        text = render_upstreams(upstreams)
        if text == old_text and not always:
            return
        atomic_write(path, text)
        if nginx is None:
            return  # nginx has never started: it will read the file when it does
        tested = False
        try:
            nginx.test()
            tested = True
            nginx.reload(drain_timeout=drain_timeout)
        except Exception as exc:
            counted("error")
            atomic_write(path, old_text)
            # nginx may have taken the new file already (a reload that failed halfway):
            # load the old one again, best effort, so file and nginx agree. After a failed
            # test it never saw the new file: no reload (it would only wait out the drain
            # of workers that a broken configuration does not replace).
            if tested:
                with contextlib.suppress(Exception):
                    nginx.reload(drain_timeout=drain_timeout)
            if isinstance(exc, ProxyError):
                raise
            raise ProxyError(f"nginx reload failed: {exc}") from exc
        counted("success")


def ensure_reload_file(path: str, names: Sequence[str], healthy: Healthy) -> None:
    """The file in reload form, with every upstream block (its current routes, or the
    healthy containers of the service, or a `down` placeholder)."""
    with _lock(path):
        text = _read_text(path)
        current = routes(text)
        if os.path.exists(path) and not is_dynamic(text) and set(current) == set(names):
            return
        wanted = {n: current.get(n) or [b for b, _ in healthy(n)] for n in names}
        atomic_write(path, render_upstreams(wanted))


def ensure_dynamic_file(
    target: dynamic.Target, names: Sequence[str], healthy: Healthy, *, drain_timeout: float
) -> None:
    """The file in dynamic form with every upstream, and a running nginx on its structure."""
    with _lock(target.path):
        text = _read_text(target.path)
        parsed = parse_dynamic(text)
        sets = dynamic.recorded(text, names)
        for name in names:
            if not sets[name].sides:
                sets[name] = by_revision(healthy(name), gen=dynamic.next_gen(sets[name]))
        want = dynamic.structure_of(target, sets)
        if parsed is None or parsed[0] != want or set(parsed[1]) != set(names):
            want = dynamic.write(target, sets)
        dynamic.sync_structure(target, want, drain_timeout=drain_timeout)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def read_upstreams(path: str) -> dict[str, list[Backend]]:
    """Which containers each upstream of a Berth-owned file routes to (for `berth status`)."""
    return routes(_read_text(path))


recorded_text = _read_text  # the file as it stands (empty when there is none yet)
