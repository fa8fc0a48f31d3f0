"""Service `profiles` as Docker Compose applies them (compose-go `Project.WithProfiles`).

A service without `profiles` always runs. A service with `profiles: [a, b]` runs only when
`a` or `b` is enabled; the enabled profiles are COMPOSE_PROFILES (comma-separated) of the
project environment, the process environment over the project's `.env`, as compose reads
it; `*` enables every profile. A disabled service is not translated at all. An enabled
service that depends on a disabled one is an error, as in compose, unless the dependency
says `required: false` (compose/crosscheck.py drops it then).

The empty profile is a profile like any other, as in compose-go: COMPOSE_PROFILES is split
on commas without dropping empty names, so an unset (or empty) COMPOSE_PROFILES enables
exactly `""`. A service with `profiles: ["${X_PROFILE:-}"]` therefore runs by default and
is switched off by setting X_PROFILE to any name (pixelfed's compose file does this).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.core.compose.fields import want_str_list
from controller.core.yamlsrc import Located
from controller.errors import brief

VARIABLE = "COMPOSE_PROFILES"


def enabled_profiles(env: Mapping[str, str]) -> frozenset[str]:
    """compose-go's WithDefaultProfiles: split on commas, each name trimmed, none dropped."""
    return frozenset(p.strip() for p in env.get(VARIABLE, "").split(","))


@dataclass
class Selection:
    """Services split by the enabled profiles; `disabled` keeps each one's profiles."""

    enabled: dict[str, Any] = field(default_factory=dict)
    disabled: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def why_disabled(self, name: str, env: Mapping[str, str]) -> str:
        wanted = ", ".join(self.disabled[name])
        return (
            f"service {name!r} is disabled: none of its profiles ({wanted}) is enabled; {how(env)}"
        )


def how(env: Mapping[str, str]) -> str:
    """What the operator chose, for messages."""
    have = env.get(VARIABLE, "")
    return f"{VARIABLE} is {brief(have)}" if have else f"{VARIABLE} is not set"


def select_services(loc: Located, services: Mapping[str, Any], env: Mapping[str, str]) -> Selection:
    """Split `services` (plain data); enabled ones lose their `profiles` key, which Berth
    has nothing to translate to. A malformed `profiles` is reported and the service kept,
    so its other problems are reported too."""
    enabled = enabled_profiles(env)
    out = Selection()
    for name, spec in services.items():
        if not isinstance(spec, dict) or "profiles" not in spec:
            out.enabled[name] = spec
            continue
        rest = {k: v for k, v in spec.items() if k != "profiles"}
        path = ("services", name, "profiles")
        profiles = want_str_list(loc, path, spec["profiles"], allow_str=False)
        if profiles is None or not profiles or "*" in enabled or enabled & set(profiles):
            out.enabled[name] = rest
        else:
            out.disabled[name] = tuple(profiles)
    return out
