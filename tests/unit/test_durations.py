import pytest

from controller.core.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("1h", 3600.0),
        ("2us", 2e-6),
        ("1.5s", 1.5),
        ("1h2m3s4ms", 3723.004),
        ("0s", 0.0),
        ("0", 0.0),
        ("30", 30.0),
        (30, 30.0),
        (0.5, 0.5),
    ],
)
def test_valid(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10x", "1m 30s", "-5s", "ten", "5s10", "1.2.3s"])
def test_invalid(text: str) -> None:
    if text == "10":
        assert parse_duration(text) == 10.0  # a bare number is seconds, not an error
        return
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, -1, None, [1]])
def test_wrong_types(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)  # type: ignore[arg-type]
