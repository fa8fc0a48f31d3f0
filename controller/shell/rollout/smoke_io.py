"""Smoke checks (x-berth.smoke): each check sent to each new container directly (its IP on
the service's first network), after the gate and before any traffic moves, or once in the
bake. The first failure ends the run: its reason names the container and the check."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable

from controller.core import rollout as r
from controller.core.plan import ServiceAction
from controller.core.smoke import judge
from controller.core.task_options import SmokeCheck
from controller.errors import NotFound, ProbeError
from controller.shell.rollout.observe import ip_for
from controller.shell.rollout.results import Event, Ports

Emit = Callable[[Event], None]


def run_smoke(
    p: Ports,
    a: ServiceAction,
    ids: tuple[str, ...],
    checks: tuple[SmokeCheck, ...],
    phase: str,
    emit: Emit,
) -> r.Event | None:
    t0 = p.clock.now()
    n = len(checks) * len(ids)
    emit(Event(a.project, a.service, "smoke", f"{n} smoke check(s) ({phase})", t0, task=phase))
    with cf.ThreadPoolExecutor(max_workers=min(8, max(1, len(ids)))) as pool:
        failures = [f for f in pool.map(lambda cid: _container(p, a, cid, checks), ids) if f]
    seconds = p.clock.now() - t0
    if failures:
        why = failures[0]
        emit(_event(a, "smoke-failed", why, p.clock.now(), seconds, phase))
        return r.SmokeFailed(why)
    done = f"{n} smoke check(s) passed ({phase})"
    emit(_event(a, "smoke-passed", done, p.clock.now(), seconds, phase))
    return None


def _container(p: Ports, a: ServiceAction, cid: str, checks: tuple[SmokeCheck, ...]) -> str:
    """'' when every check passes on this container; else the first failure."""
    assert a.target is not None
    try:
        st = p.runtime.inspect(cid)
    except NotFound:
        return f"container {cid[:12]} is gone"
    ip = ip_for(st.ips, a.target)
    if ip is None:
        return f"container {cid[:12]} has no IP address"
    for check in checks:
        headers = dict(check.headers)
        body = check.body.encode() if check.body is not None else None
        try:
            ans = p.http.request(
                ip,
                check.port,
                check.method,
                check.path,
                headers=headers,
                body=body,
                timeout=check.timeout,
            )
        except ProbeError as exc:
            return f"{_name(check)} on {cid[:12]}: {exc}"
        why = judge(check, ans.status, ans.headers, ans.body)
        if why is not None:
            return f"{_name(check)} on {cid[:12]}: {why}"
    return ""


def _event(a: ServiceAction, phase: str, msg: str, at: float, secs: float, task: str) -> Event:
    return Event(a.project, a.service, phase, msg, at, task_seconds=secs, task=task)


def _name(check: SmokeCheck) -> str:
    return f"{check.name} ({check.method} {check.path})"
