"""Docker SDK exceptions -> Berth's errors, shared by the Docker adapter's modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
import requests.exceptions

from controller.errors import ContainerRuntimeError, NotFound, TemporaryError


def explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Map foreign exceptions to Berth's; `what` names the operation for the log line."""
    try:
        yield
    except docker.errors.NotFound as exc:  # includes ImageNotFound
        raise NotFound(f"{what}: {explain(exc)}") from exc
    except docker.errors.APIError as exc:
        raise ContainerRuntimeError(f"{what}: {explain(exc)}") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise TemporaryError(f"{what}: Docker engine unreachable: {exc}", delay=2.0) from exc
    except docker.errors.DockerException as exc:
        msg = str(exc)
        if "connection" in msg.lower() or "timed out" in msg.lower():
            raise TemporaryError(f"{what}: {msg}", delay=2.0) from exc
        raise ContainerRuntimeError(f"{what}: {msg}") from exc
