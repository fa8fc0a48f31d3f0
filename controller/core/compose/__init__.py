"""Compose files -> StackSpec. See `keys` for what is supported and what is refused."""

from controller.core.compose.interpolate import InterpolationError, interpolate, parse_dotenv
from controller.core.compose.stack import load_stack, normalize_project

__all__ = ["InterpolationError", "interpolate", "load_stack", "normalize_project", "parse_dotenv"]
