"""Test support: local image builds and Docker cleanup helpers shared by the test suites."""

from tests.support.images import (
    APP_REPOSITORY,
    BASE_IMAGE,
    HEALTHCHECK,
    MODES,
    NGINX_IMAGE,
    ensure_app_image,
    ensure_base_image,
    ensure_nginx_image,
    healthcheck,
)

__all__ = [
    "APP_REPOSITORY",
    "BASE_IMAGE",
    "HEALTHCHECK",
    "MODES",
    "NGINX_IMAGE",
    "ensure_app_image",
    "ensure_base_image",
    "ensure_nginx_image",
    "healthcheck",
]
