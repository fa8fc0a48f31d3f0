"""Docker SDK exceptions -> Berth's errors, shared by the Docker adapter's modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
import requests.exceptions

from controller.errors import ContainerRuntimeError, NotFound, Retry, TemporaryError


def explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


def retry_class(status: int | None) -> Retry:
    """The Engine API's status code decides: 4xx (bad request, forbidden, conflict on a name
    that a create asked for...) will fail the same way again; 5xx and no answer may not.
    409 is transient: it is a container being removed or a name freed a moment later."""
    if status is None or status >= 500 or status in (408, 409, 429):
        return Retry.TRANSIENT
    return Retry.TERMINAL


def from_api(what: str, exc: docker.errors.APIError) -> ContainerRuntimeError:
    """An Engine API error, classified by its status code first (message text is only read
    where the engine gives no code)."""
    status = exc.status_code
    if status == 404:
        return NotFound(f"{what}: {explain(exc)}")
    delay = 2.0 if status is None or status >= 500 else None
    return ContainerRuntimeError(f"{what}: {explain(exc)}", retry=retry_class(status), delay=delay)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Map foreign exceptions to Berth's; `what` names the operation for the log line."""
    try:
        yield
    except docker.errors.APIError as exc:  # NotFound and ImageNotFound are 404 APIErrors
        raise from_api(what, exc) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise TemporaryError(f"{what}: Docker engine unreachable: {exc}", delay=2.0) from exc
    except docker.errors.DockerException as exc:
        msg = str(exc)
        if "connection" in msg.lower() or "timed out" in msg.lower():
            raise TemporaryError(f"{what}: {msg}", delay=2.0) from exc
        raise ContainerRuntimeError(f"{what}: {msg}") from exc
