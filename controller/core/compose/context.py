"""What translating one service needs to know about its stack."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.core.boundary import ConfigFiles
from controller.core.model import NetworkDef, VolumeDef
from controller.core.yamlsrc import Located, Path

MAX_ENV_STACK = 16 * 1024 * 1024  # characters of container environments in one stack
MAX_INJECTED_STACK = 16 * 1024 * 1024  # characters of environment/content secrets, configs


@dataclass
class Budget:
    """Characters of environment one stack's containers may get in all (a value shared by
    many services is copied into each; hostile input must not turn that into gigabytes)."""

    left: int = MAX_ENV_STACK
    what: str = f"container environments pass {MAX_ENV_STACK} characters"

    def spend(self, size: int, loc: Located, path: Path) -> bool:
        """False once spent; the service that passes the limit is named, once."""
        if self.left < 0:
            return False
        self.left -= size
        if self.left < 0:
            loc.error(path, f"the stack's {self.what}")
            return False
        return True


@dataclass(frozen=True)
class StackCtx:
    """Shared, read-only facts plus the problem collector (`loc`) and the files read."""

    loc: Located
    project: str
    project_dir: str  # directory of the first compose file: relative paths resolve here
    env: Mapping[str, str]  # project environment: `.env` overlaid by the real environment
    files: ConfigFiles  # reads, and resolves paths for the desired/ boundary
    networks: Mapping[str, NetworkDef]
    volumes: Mapping[str, VolumeDef]
    backend: str = "local"  # top-level x-berth.backend (compose/xberth.py stack_backend)
    files_read: list[str] = field(default_factory=list)
    budget: Budget = field(default_factory=Budget)
    injected: Budget = field(  # a 1 MiB secret is hashed and copied once per use
        default_factory=lambda: Budget(
            MAX_INJECTED_STACK,
            f"injected secret and config files pass {MAX_INJECTED_STACK} characters",
        )
    )


@dataclass
class Body:
    """The container create body being built: top level and HostConfig, with set-once checks."""

    top: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)

    def set_host(self, ctx: StackCtx, path: Path, key: str, value: Any) -> None:
        """Two compose keys may both map to one field (mem_limit and deploy limits)."""
        if value is None:  # the reader already recorded why
            return
        if key in self.host and self.host[key] != value:
            ctx.loc.error(path, f"conflicts with another setting of HostConfig.{key}")
            return
        self.host[key] = value
