"""A list element redefined in the same service, as compose-go's EnforceUnicity settles it.

After merging the files, compose keeps one element per key in these service lists: a later
element with the key of an earlier one takes the earlier one's place (so sonarqube's two
mounts on `/opt/sonarqube/logs` are one, the second). Berth does the same on the merged
tree, before translation, so every remaining element keeps its own file and line. A
replaced element that differs from its replacement is a warning naming both lines: it is
dropped, as in compose, but said. Keys as compose-go's indexers compute them
(override/uncity.go): a mount by its target (secrets under /run/secrets, configs under /),
a device by its container path, a port and an expose entry by their text, an env_file by
its path, the others by their value. `environment`, `labels` and `sysctls` are already
last-wins in the translation, and `profiles` are only tested for membership.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.core.compose.merge import plain
from controller.core.yamlsrc import Node, dotted
from controller.errors import Problem


def _short_target(text: str) -> str:
    parts = text.split(":")
    return parts[0] if len(parts) == 1 else parts[1]


def _mount(default: str) -> Callable[[Any], str]:
    def key(v: Any) -> str:
        if isinstance(v, dict):
            return str(v.get("target") or f"{default}/{v.get('source')}")
        return f"{default}/{v}"

    return key


def _target(v: Any) -> str:
    """A volume or device: long syntax by `target`, short by its second field."""
    return str(v.get("target")) if isinstance(v, dict) else _short_target(str(v))


def _port(v: Any) -> str:
    if isinstance(v, dict):
        host, proto = v.get("host_ip", "0.0.0.0"), v.get("protocol", "tcp")
        return f"{host}:{v.get('published')}:{v.get('target')}/{proto}"
    return str(v)


def _env_file(v: Any) -> str:
    return str(v.get("path")) if isinstance(v, dict) else str(v)


def _value(v: Any) -> str:
    return str(v)


_KEYS: dict[str, Callable[[Any], str]] = {
    "volumes": _target,
    "secrets": _mount("/run/secrets"),
    "configs": _mount(""),
    "devices": _target,
    "ports": _port,
    "expose": _value,
    "env_file": _env_file,
    "tmpfs": _value,
    "dns": _value,
    "dns_opt": _value,
    "dns_search": _value,
    "cap_add": _value,
    "cap_drop": _value,
    "links": _value,
}


def enforce_unicity(root: Node) -> tuple[Node, list[Problem]]:
    """The merged compose tree with each service list's redefined elements settled, and a
    warning for each replaced element that differed from its replacement."""
    services = root.value.get("services") if isinstance(root.value, dict) else None
    if services is None or not isinstance(services.value, dict):
        return root, []
    warnings: list[Problem] = []
    new_services = {}
    for name, svc in services.value.items():
        if isinstance(svc.value, dict):
            kids = dict(svc.value)
            for key, index in _KEYS.items():
                items = kids.get(key)
                if items is not None and isinstance(items.value, list):
                    path = ("services", name, key)
                    kids[key] = Node(_settle(items, index, path, warnings), items.file, items.line)
            svc = Node(kids, svc.file, svc.line, svc.tag)
        new_services[name] = svc
    top = dict(root.value)
    top["services"] = Node(new_services, services.file, services.line, services.tag)
    return Node(top, root.file, root.line, root.tag), warnings


def _settle(
    items: Node, index: Callable[[Any], str], path: tuple[str, str, str], warnings: list[Problem]
) -> list[Node]:
    out: list[Node] = []
    at: dict[str, int] = {}
    for i, item in enumerate(items.value):
        try:
            key = index(plain(item))
        except (TypeError, AttributeError):  # a malformed element: the translation says so
            out.append(item)
            continue
        if key not in at:
            at[key] = len(out)
            out.append(item)
            continue
        earlier = out[at[key]]
        if plain(earlier) != plain(item):
            where = f"line {earlier.line}" if earlier.line else "an earlier entry"
            why = f"redefines {key!r} of {where}: the later one is used, as compose does"
            warnings.append(Problem(item.file, item.line, dotted((*path, i)), why))
        out[at[key]] = item
    return out
