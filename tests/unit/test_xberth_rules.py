"""x-berth settings that would otherwise be silently ignored are errors."""

from __future__ import annotations

import pytest

from controller.core.config import build_config
from controller.errors import ConfigError
from tests.unit.test_bad_inputs import BASE_DESIRED, COMPOSE, DESIRED, reader

NO_PROXY = """\
services:
  api:
    image: reg/api
    expose: ["8000"]
    x-berth:
      upstream: {name: api_up, port: 8000}
"""
PROXY_WITHOUT_NGINX = """\
services:
  api:
    image: reg/api
x-berth:
  proxy:
    upstreams_file: ../nginx/up.conf
"""


@pytest.mark.parametrize(
    ("compose", "field", "fragment"),
    [
        (NO_PROXY, "services.api.x-berth.upstream", "no top-level x-berth.proxy"),
        (PROXY_WITHOUT_NGINX, "x-berth.proxy", "test_command and reload_command"),
    ],
)
def test_ignored_settings_are_errors(compose: str, field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(
            [(DESIRED, BASE_DESIRED)],
            environ={},
            files=reader({DESIRED: BASE_DESIRED, COMPOSE: compose}),
        )
    text = str(err.value)
    assert field in text and fragment in text and "c.yml:" in text, text
