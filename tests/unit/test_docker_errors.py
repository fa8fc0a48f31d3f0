"""Engine API errors are classified by status code first (DESIGN §8: foreign exceptions
translated at the edge), each carrying its retry class."""

from __future__ import annotations

import docker.errors
import pytest
import requests

from controller.adapters._docker_errors import from_api, translated
from controller.errors import ContainerRuntimeError, NotFound, Retry, TemporaryError


def api_error(status: int | None, text: str = "boom") -> docker.errors.APIError:
    response = None
    if status is not None:
        response = requests.Response()
        response.status_code = status
    return docker.errors.APIError(text, response=response, explanation=text)


@pytest.mark.parametrize(
    ("status", "kind", "retry"),
    [
        (404, NotFound, Retry.TRANSIENT),
        (400, ContainerRuntimeError, Retry.TERMINAL),  # the same request fails the same way
        (403, ContainerRuntimeError, Retry.TERMINAL),
        (409, ContainerRuntimeError, Retry.TRANSIENT),  # a name freed a moment later
        (500, ContainerRuntimeError, Retry.TRANSIENT),
        (503, ContainerRuntimeError, Retry.TRANSIENT),
        (None, ContainerRuntimeError, Retry.TRANSIENT),
    ],
)
def test_status_code_decides_the_retry_class(
    status: int | None, kind: type[Exception], retry: Retry
) -> None:
    err = from_api("create api-1", api_error(status, "whatever the message says: not found"))
    assert type(err) is kind and err.retry is retry
    assert "create api-1" in str(err)


def test_a_500_whose_text_says_not_found_is_not_a_not_found() -> None:
    """The old substring mapping would have read the text; the code wins."""
    err = from_api("inspect x", api_error(500, "No such container: x"))
    assert not isinstance(err, NotFound) and err.retry is Retry.TRANSIENT


def test_connection_errors_are_temporary() -> None:
    with pytest.raises(TemporaryError) as info, translated("list"):
        raise requests.exceptions.ConnectionError("refused")
    assert info.value.retry is Retry.TRANSIENT and info.value.delay == 2.0
