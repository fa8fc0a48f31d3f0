import pytest

from controller.core.reference import image_problem, tag_problem

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "tag", ["1.4.2", "latest", "v1_2-rc.3", "A" * 128, DIGEST, f"1.4.2@{DIGEST}", "_x"]
)
def test_valid_tags(tag: str) -> None:
    assert tag_problem(tag) is None


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ("", "non-empty"),
        (".hidden", "invalid tag"),
        ("-x", "invalid tag"),
        ("a" * 129, "invalid tag"),
        ("1.0 beta", "invalid tag"),
        ("repo/x", "invalid tag"),
        ("1.0:2", "invalid tag"),
        ("sha256:abc", "invalid digest"),
        ("sha256:" + "AB" * 32, "invalid digest"),
        ("1.0@sha256:abc", "invalid digest after '@'"),
        ("1.0@md5:" + "a" * 32, "invalid digest after '@'"),
    ],
)
def test_invalid_tags(tag: str, fragment: str) -> None:
    problem = tag_problem(tag)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.25",
        "registry.example.com:5000/team/api",
        "127.0.0.1:5000/x:1",
        f"a/b@{DIGEST}",
    ],
)
def test_valid_images(image: str) -> None:
    assert image_problem(image) is None


@pytest.mark.parametrize("image", ["", "Nginx", "a b", "x::1", "x:"])
def test_invalid_images(image: str) -> None:
    assert image_problem(image) is not None
