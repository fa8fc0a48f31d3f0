"""Concurrent alias swaps on one network: does dockerd 20.10 deadlock, and which lock avoids it?

Berth moves a service's DNS alias by disconnect + reconnect (Engine API 1.41 has no other
way). An earlier build saw dockerd hang when parallel rollouts swapped endpoints at once,
and serialised every swap in the process; that made 10 parallel rollouts cost 10x one.
This reproduces what parallel rollouts do on one network, with the engine for real:

  WORKERS threads, each ROUNDS times: create + start a new container (no alias), swap it
  to carry the alias (reconnect asking for its address), swap the old one to drop the
  alias, stop and remove the old one; every container stays on one bridge network with a
  user-configured subnet (as Berth creates them).

It runs the same load under four lock policies:

  global       every swap alone in the process, starts shared but never during a swap
               (the old lock)
  per-network  the adapter's lock (NetworkLocks): a swap alone on its network, starts on
               it shared; other networks are not held
  concurrent   swaps of one network together, starts apart from them
  none         no lock at all (to see whether the engine itself copes)

and reports per policy the wall time, the slowest single API call, any call that hung
(an HTTP timeout of HANG_S), and any container that came back on another address. A hang
stops the run: dockerd must then be restarted (`scripts/ensure-docker.sh` does not do it;
`pkill dockerd` first). Run: `.venv/bin/python bench/swap_concurrency.py`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docker
from _common import table, unique_project

from controller.adapters._address_lock import NetworkLocks
from tests.support.cleanup import remove_project
from tests.support.images import ensure_app_image

WORKERS = int(os.environ.get("SWAP_WORKERS", "10"))
ROUNDS = int(os.environ.get("SWAP_ROUNDS", "20"))
HANG_S = 30
POLICIES = ("global", "per-network", "concurrent", "none")


class Hung(Exception):
    pass


class _TwoKinds:
    """Swaps together, starts together, never one kind during the other (no fairness: the
    bench's workers alternate, so neither kind starves here)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = {"swap": 0, "alloc": 0}

    @contextlib.contextmanager
    def hold(self, kind: str) -> Iterator[None]:
        other = "alloc" if kind == "swap" else "swap"
        with self._cond:
            self._cond.wait_for(lambda: self._held[other] == 0)
            self._held[kind] += 1
        try:
            yield
        finally:
            with self._cond:
                self._held[kind] -= 1
                self._cond.notify_all()


class Policy:
    """The lock policies behind one interface: swap(net) and alloc(nets)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._nets = NetworkLocks()
        self._kinds = _TwoKinds()

    @contextlib.contextmanager
    def swap(self, net: str) -> Iterator[None]:
        if self.name == "global":  # the old lock: one swap at a time in the process
            with self._nets.exclusive("*"):
                yield
        elif self.name == "per-network":
            with self._nets.exclusive(net):
                yield
        elif self.name == "concurrent":
            with self._kinds.hold("swap"):
                yield
        else:
            yield

    @contextlib.contextmanager
    def alloc(self, nets: list[str]) -> Iterator[None]:
        if self.name == "global":  # the old lock: starts shared, never during a swap
            with self._nets.allocating(["*"]):
                yield
        elif self.name == "per-network":
            with self._nets.allocating(nets):
                yield
        elif self.name == "concurrent":
            with self._kinds.hold("alloc"):
                yield
        else:
            yield


class Load:
    def __init__(self, api: Any, image: str, project: str, net: str, policy: Policy) -> None:
        self.api, self.image, self.project, self.net, self.policy = api, image, project, net, policy
        self.slowest = 0.0
        self.moved: list[str] = []
        self.swap_s: list[float] = []  # each swap, lock wait included
        self.calls = 0
        self._lock = threading.Lock()

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        t0 = time.monotonic()
        try:
            return fn(*args, **kw)
        except docker.errors.APIError:
            raise
        except Exception as exc:  # requests' ReadTimeout: the engine did not answer
            if time.monotonic() - t0 >= HANG_S - 1:
                raise Hung(f"{what} did not answer in {HANG_S} s ({exc!r})") from exc
            raise
        finally:
            with self._lock:
                self.calls += 1
                self.slowest = max(self.slowest, time.monotonic() - t0)

    def ip(self, cid: str) -> str:
        doc = self.call("inspect", self.api.inspect_container, cid)
        return str(doc["NetworkSettings"]["Networks"][self.net]["IPAddress"])

    def new(self, worker: int, n: int) -> str:
        cfg = self.api.create_container_config(
            self.image,
            None,
            labels={"com.docker.compose.project": self.project},
            host_config=self.api.create_host_config(network_mode=self.net, init=True),
            networking_config=self.api.create_networking_config(
                {self.net: self.api.create_endpoint_config()}
            ),
        )
        name = f"{self.project}-w{worker}-{n}"
        cid = str(self.call("create", self.api.create_container_from_config, cfg, name=name)["Id"])
        with self.policy.alloc([self.net]):
            self.call("start", self.api.start, cid)
        return cid

    def swap(self, cid: str, alias: str | None) -> None:
        before = self.ip(cid)
        t0 = time.monotonic()
        with self.policy.swap(self.net):
            self.call("disconnect", self.api.disconnect_container_from_network, cid, self.net)
            self.call(
                "connect",
                self.api.connect_container_to_network,
                cid,
                self.net,
                aliases=[alias] if alias else None,
                ipv4_address=before,
            )
        with self._lock:
            self.swap_s.append(time.monotonic() - t0)
        after = self.ip(cid)
        if after != before:
            self.moved.append(f"{cid[:12]} {before} -> {after}")

    def worker(self, w: int) -> None:
        alias = f"svc{w}"
        old = self.new(w, 0)
        self.swap(old, alias)
        for n in range(1, ROUNDS + 1):
            cur = self.new(w, n)
            self.swap(cur, alias)
            self.swap(old, None)
            self.call("stop", self.api.stop, old, timeout=0)
            self.call("remove", self.api.remove_container, old, force=True)
            old = cur


def run(policy_name: str, api: Any, image: str) -> tuple[str, ...]:
    project = unique_project("bswap")
    net = f"{project}_default"
    # as Berth creates networks: the subnet the engine picks, then fixed (user-configured)
    api.create_network(net, driver="bridge")
    subnet = api.inspect_network(net)["IPAM"]["Config"][0]["Subnet"]
    api.remove_network(net)
    pool = docker.types.IPAMPool(subnet=subnet)
    api.create_network(
        net,
        driver="bridge",
        ipam=docker.types.IPAMConfig(pool_configs=[pool]),
        labels={"com.docker.compose.project": project},
    )
    load = Load(api, image, project, net, Policy(policy_name))
    t0 = time.monotonic()
    error = ""
    try:
        with ThreadPoolExecutor(WORKERS) as ex:
            for f in [ex.submit(load.worker, w) for w in range(WORKERS)]:
                f.result()
    except Hung as exc:
        error = f"HUNG: {exc}"
    except docker.errors.APIError as exc:
        error = f"error: {exc.explanation or exc}"[:200]
    except Exception as exc:
        error = f"error: {exc!r}"[:200]
    wall = time.monotonic() - t0
    if not error.startswith("HUNG"):
        remove_project(docker.from_env(), project)
    done = sorted(load.swap_s) or [float("nan")]
    return (
        policy_name,
        f"{wall:.1f}",
        f"{len(load.swap_s)}",
        f"{done[len(done) // 2]:.2f} / {done[int(len(done) * 0.95)]:.2f}",
        f"{load.slowest:.2f}",
        str(len(load.moved)),
        error or "ok",
    )


def main() -> int:
    api = docker.APIClient(timeout=HANG_S)
    image = ensure_app_image("1.0.0")
    rows = []
    for name in sys.argv[1:] or POLICIES:
        row = run(name, api, image)
        rows.append(row)
        print(" | ".join(row), file=sys.stderr, flush=True)
        if row[-1].startswith("HUNG"):
            break
    print("## Concurrent alias swaps on one network\n")
    print(
        f"{WORKERS} threads on one bridge network (user-configured subnet), each {ROUNDS} "
        "rounds of: create + start a container, swap it onto the alias (disconnect + "
        "reconnect asking for its address), swap the old one off, stop and remove the old "
        f"one. A call that does not answer in {HANG_S} s counts as a hang.\n"
    )
    print(
        table(
            (
                "lock policy",
                "wall s",
                "swaps done",
                "swap s, median / p95 (lock wait included)",
                "slowest call s",
                "addresses moved",
                "result",
            ),
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
