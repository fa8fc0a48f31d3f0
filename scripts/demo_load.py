"""Live traffic for the demo: GET /version through nginx until told to stop; prints counts.

    python scripts/demo_load.py URL SUMMARY_FILE    (SIGTERM or SIGINT ends it)
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections import Counter

import httpx

stop = threading.Event()


def stamp() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"


def main() -> int:
    url, summary = sys.argv[1], sys.argv[2]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    versions: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        deadline = time.time() + 1800  # bounded whatever happens
        while not stop.is_set() and time.time() < deadline:
            try:
                r = httpx.get(url, timeout=10, trust_env=False, headers={"Connection": "close"})
                with lock:
                    if r.status_code == 200:
                        versions[str(r.json().get("version"))] += 1
                    else:
                        failures.append(f"{stamp()} HTTP {r.status_code}")
            except (httpx.HTTPError, ValueError) as exc:
                with lock:
                    failures.append(f"{stamp()} {type(exc).__name__}: {exc}")
            time.sleep(0.02)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    while not stop.wait(0.5):
        with lock:
            doc = {"requests": sum(versions.values()) + len(failures), "failed": len(failures),
                   "versions": dict(versions), "errors": failures[:10] + failures[-10:]}
        with open(summary, "w") as f:
            json.dump(doc, f)
    for t in threads:
        t.join()
    with open(summary, "w") as f:
        json.dump({"requests": sum(versions.values()) + len(failures), "failed": len(failures),
                   "versions": dict(versions), "errors": failures[:10] + failures[-10:]}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
