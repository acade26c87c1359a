from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coi.chat import flowed


def test_rfc3676_soft_breaks_join() -> None:
    assert flowed.decode("Hello \nworld\n") == "Hello world\n"


def test_quoted_lines_do_not_join_across_depths() -> None:
    assert flowed.decode(">> a \n> b\nc") == ">> a\n> b\nc"


def test_space_stuffing_is_removed_and_added() -> None:
    assert flowed.encode("From here\n>not a quote\n indented") == (
        " From here\n >not a quote\n  indented"
    )
    assert flowed.decode(" From here\n >not a quote") == "From here\n>not a quote"


def test_delsp_removes_the_space_of_the_soft_break() -> None:
    assert flowed.decode("super \ncalifragilistic", delsp=True) == "supercalifragilistic"


def test_signature_separator_is_never_flowed() -> None:
    assert flowed.decode("text\n-- \nsig") == "text\n-- \nsig"


def test_long_paragraph_wraps_below_width() -> None:
    text = "word " * 60
    encoded = flowed.encode(text.strip())
    assert all(len(line) <= 78 for line in encoded.split("\n"))
    assert flowed.decode(encoded) == text.strip()


_text = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"], blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=400,
)


def _normalize(text: str) -> str:
    return "\n".join(line if line == "-- " else line.rstrip(" ") for line in text.split("\n"))


@given(_text, st.booleans())
def test_encode_decode_round_trip(text: str, delsp: bool) -> None:
    encoded = flowed.encode(text, delsp=delsp)
    assert flowed.decode(encoded, delsp=delsp) == _normalize(text)
