"""Which switch a stack's nginx gets: dynamic (peers set at run time) or reload.

`x-berth.proxy.switch: reload` and `dynamic` are taken as written; `auto` is dynamic when
the nginx loads the Lua module (asked once per nginx: `nginx -T`) and can reach Berth's
upstreams directory to create its control socket there, else reload.
"""

from __future__ import annotations

import threading
from typing import Protocol

from controller.core.model import StackSpec
from controller.core.peers import Layout, is_dynamic, layout_for
from controller.errors import ProxyError

_decided: dict[tuple[str, str, tuple[str, ...]], bool] = {}
_guard = threading.Lock()


class LuaProbe(Protocol):
    def lua_available(self) -> bool: ...


def decide_mode(
    stack: StackSpec, nginx: LuaProbe | None, running: tuple[str, ...], file_text: str
) -> Layout | None:
    """The dynamic layout, or None for the reload switch. `nginx` is None while no nginx
    runs: then `auto` keeps what the file already is."""
    proxy = stack.proxy
    assert proxy is not None
    if proxy.switch == "reload":
        return None
    layout, why = layout_for(proxy, stack.services)
    if proxy.switch == "dynamic":
        if layout is None:
            raise ProxyError(f"x-berth.proxy.switch is dynamic, but {why}")
        return layout
    if layout is None:
        return None
    if nginx is None:
        return layout if is_dynamic(file_text) else None
    key = (stack.project, proxy.upstreams_file, tuple(sorted(running)))
    with _guard:
        known = _decided.get(key)
    if known is None:
        known = nginx.lua_available()
        with _guard:
            _decided[key] = known
    return layout if known else None
