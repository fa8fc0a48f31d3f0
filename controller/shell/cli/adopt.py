"""`berth adopt`: take over a project that `docker compose up` started.

Compose's containers carry compose's labels but not `berth.managed`, so Berth leaves them
alone — except here: this one pass lists them as containers of an unknown revision, and the
ordinary rollout replaces them (start-first and health-gated; stop-first where ports or a
container_name force it). They keep serving until their replacement passed its gate; a
failed rollout leaves them running. Volumes and networks are found by compose's names
(`{project}_{name}`), so no data is copied. The daemon never adopts: taking over
containers Berth did not create is an operator's decision, made once.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import asdict

from controller.shell.cli.commands import EXIT_FAILED, EXIT_OK, apply_once, out_json
from controller.shell.wiring import Context


def cmd_adopt(ctx: Context, projects: Sequence[str], *, as_json: bool) -> int:
    cfg = ctx.config()
    unknown = sorted(set(projects) - set(cfg.stacks))
    if unknown:
        print(
            f"berth adopt: no project {', '.join(unknown)} in desired/ "
            f"(known: {', '.join(sorted(cfg.stacks)) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    ctx = dataclasses.replace(ctx, adopt=frozenset(projects or cfg.stacks))
    theirs = [c for c in ctx.runtime.list_containers() if not c.managed]
    if not as_json:
        if not theirs:
            print("no containers started by docker compose in these projects")
        for c in sorted(theirs, key=lambda c: (c.project, c.service, c.name)):
            print(f"adopting {c.project}/{c.service}: {c.name} ({c.image}, {c.state})")
    results = apply_once(ctx, cfg, as_json=as_json)
    if as_json:
        out_json([asdict(r) for r in results])
    else:
        for r in results:
            print(f"{r.project}/{r.service}: {r.outcome} ({r.reason}) in {r.duration:.1f}s")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
