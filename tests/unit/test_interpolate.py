import pytest

from controller.core.compose.interpolate import InterpolationError, interpolate, parse_dotenv

ENV = {"SET": "value", "EMPTY": ""}


def run(text: str) -> str:
    return interpolate(text, ENV.get)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${SET}", "value"),
        ("$SET", "value"),
        ("x-${SET}-y", "x-value-y"),
        ("$SET.txt", "value.txt"),
        ("${UNSET}", ""),
        ("$$", "$"),
        ("$${SET}", "${SET}"),
        ("$$SET", "$SET"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${SET:-d}", "value"),
        ("${UNSET-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${SET:?boom}", "value"),
        ("${EMPTY?boom}", ""),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-a${UNSET2:-b}c}", "abc"),
        ("^\\d+$", "^\\d+$"),
        ("cost $5", "cost $5"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${UNSET:?must set it}", "required variable UNSET is missing a value: must set it"),
        ("${EMPTY:?nope}", "EMPTY"),
        ("${UNSET?x}", "UNSET"),
        ("${SET", "unclosed"),
        ("${}", "bad name"),
        ("${SET!x}", "invalid interpolation"),
    ],
)
def test_interpolate_errors(text: str, fragment: str) -> None:
    with pytest.raises(InterpolationError, match=fragment):
        run(text)


def test_dotenv() -> None:
    text = "\n".join(
        [
            "# comment",
            "",
            "A=1",
            "export B = two ",
            "C='lit ${A} # not a comment'",
            'D="quoted ${A}\\nnext"',
            "E=${A}-$B # comment",
            "F",
            "G",
            'H="multi',
            'line"',
            "I=",
        ]
    )
    env = parse_dotenv(text, environ={"F": "from-env", "A": "ignored-by-file"})
    assert env == {
        "A": "1",
        "B": "two",
        "C": "lit ${A} # not a comment",
        "D": "quoted 1\nnext",
        "E": "1-two",
        "F": "from-env",
        "H": "multi\nline",
        "I": "",
    }


def test_dotenv_bad_line_has_line_number() -> None:
    from controller.core.compose.interpolate import DotenvError

    with pytest.raises(DotenvError) as info:
        parse_dotenv("A=1\nnot valid=2\n", environ={})
    assert info.value.line == 2
