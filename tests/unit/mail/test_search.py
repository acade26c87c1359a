"""Search data: RFC 2047 decoding, body text, folding, storage round trip."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from coi.mail import dump_search, fold_for_search, index_message, load_search, search_data
from coi.mail.search import SearchData, decode_words, envelope_field, header_text

DATA = Path(__file__).parents[2] / "data" / "mail"


def test_encoded_words() -> None:
    assert decode_words(b"=?UTF-8?B?R3LDvMOfZQ==?=") == "Grüße"
    assert decode_words(b"=?ISO-8859-1?Q?J=F6rg_M=FCller?= <j@example.org>") == (
        "Jörg Müller <j@example.org>"
    )
    assert decode_words(b"=?utf-8?q?a?= =?utf-8?q?b?=") == "ab"  # RFC 2047 §6.2
    assert decode_words(b"plain =?x-unknown?q?caf=C3=A9?= end") == "plain café end"
    assert decode_words(b"=?utf-8?b?!!!?=") is not None
    assert decode_words("raw ütf8".encode()) == "raw ütf8"
    assert decode_words(b"latin1 \xe9") == "latin1 é"


def test_search_data_headers_and_text() -> None:
    raw = (
        b"From: =?UTF-8?B?SsO2cmc=?= <joerg@example.org>\r\n"
        b"To: a@example.org,\r\n b@example.org\r\n"
        b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nK=E4se\r\n"
        b"--b\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"PHA+SGFsbG8gJmFtcDsgV2VsdDwvcD4=\r\n"
        b"--b\r\nContent-Type: image/png\r\n\r\nnot text\r\n--b--\r\n"
    )
    d = search_data(raw, index_message(raw))
    # stored folded (fold_for_search), so SEARCH folds only its key
    assert d.headers[0] == ("from", "jörg <joerg@example.org>")
    assert ("subject", fold_for_search("Grüße")) in d.headers
    # FROM/TO/CC/BCC also kept as ENVELOPE has them, under a name no field can have
    assert (envelope_field("to"), "a@example.org, b@example.org") in d.headers
    assert (envelope_field("from"), "jörg <joerg@example.org>") in d.headers
    assert "käse" in d.text and "hallo & welt" in d.text and "<p>" not in d.text
    assert "not text" not in d.text
    assert load_search(dump_search(d)) == d
    assert fold_for_search("GRÜSSE") in fold_for_search(d.headers[2][1])


def test_unknown_charset_body() -> None:
    raw = b"Content-Type: text/plain; charset=x-bogus\r\n\r\ncaf\xc3\xa9 \xff\r\n"
    d = search_data(raw, index_message(raw))
    assert d.text.startswith("caf")


def test_nested_message_text_included() -> None:
    raw = (DATA / "nested.eml").read_bytes()
    d = search_data(raw, index_message(raw))
    assert "first part" in d.text and "inner plain" in d.text and "inner html" in d.text
    assert "hello" in d.text  # base64 text/plain decoded


def test_fold() -> None:
    assert fold_for_search("Straße") == fold_for_search("STRASSE")
    assert fold_for_search("e\u0301") == fold_for_search("é")


@given(
    st.lists(st.tuples(st.sampled_from(["from", "to", "subject"]), st.text()), max_size=4),
    st.text(),
    st.data(),
)
def test_stored_strings_keep_their_utf8_bytes(
    headers: list[tuple[str, str]], text: str, data: st.DataObject
) -> None:
    """SEARCH narrows BODY/TEXT with instr() on the stored bytes: any substring of the
    stored strings must appear as UTF-8 in them, and every header needle in the lines."""
    stored = SearchData(tuple(headers), text)
    blob = dump_search(stored)
    start = data.draw(st.integers(0, len(text)))
    needle = text[start : data.draw(st.integers(start, len(text)))]
    assert needle.encode("utf-8", "surrogatepass") in blob
    lines = header_text(stored)
    for name, value in headers:
        assert value in lines and f"{name}: {value}" in lines
