"""Preview text (RFC 8970 §3.3): first readable text part, markup gone, whitespace
collapsed, at most 200 characters."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from coi.mail.index import index_message
from coi.mail.preview import _CONTROL_RE, collapse, preview_text

_SPACE_RE = re.compile(r"\s+")  # the reference: whitespace runs by regular expression


def _preview(text: str) -> str:
    raw = text.replace("\n", "\r\n").encode("utf-8")
    return preview_text(raw, index_message(raw))


def test_plain_text_whitespace_collapsed() -> None:
    assert _preview("Subject: x\n\n  Hello\n\n\tworld  \n") == "Hello world"


def test_alternative_prefers_plain_text() -> None:
    message = (
        "Content-Type: multipart/alternative; boundary=b\n\n--b\n"
        "Content-Type: text/html\n\n<p>rich</p>\n--b\n"
        "Content-Type: text/plain\n\nplain\n--b--\n"
    )
    assert _preview(message) == "plain"


def test_html_only_converted() -> None:
    message = (
        "Content-Type: text/html; charset=utf-8\n\n"
        "<html><head><title>T</title><script>x()</script></head>"
        "<body><!-- c --><p>a&amp;b &lt;3</p><br>next&nbsp;line</body></html>\n"
    )
    assert _preview(message) == "a&b <3 next\xa0line".replace("\xa0", " ")


def test_encodings_and_charsets() -> None:
    qp = (
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\nK=F6ln=\n ok\n"
    )
    assert _preview(qp) == "Köln ok"
    b64 = (
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\nR3LDvMOfZQ==\n"
    )
    assert _preview(b64) == "Grüße"


def test_attachments_forwarded_messages_and_encrypted_are_skipped() -> None:
    mixed = (
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: text/plain; name=notes.txt\n\nfile\n--b\n"
        "Content-Type: message/rfc822\n\nSubject: inner\n\ninner text\n--b\n"
        "Content-Type: text/plain\nContent-Disposition: attachment\n\nattached\n--b--\n"
    )
    assert _preview(mixed) == ""
    encrypted = (
        'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b\n\n'
        "--b\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--b\n"
        "Content-Type: text/plain\n\n-----BEGIN PGP MESSAGE-----\n--b--\n"
    )
    assert _preview(encrypted) == ""
    assert _preview("Content-Type: image/png\n\n\x89PNG\n") == ""


def test_limit_in_characters() -> None:
    text = _preview("Content-Type: text/plain; charset=utf-8\n\n" + "é" * 500 + "\n")
    assert text == "é" * 200
    assert _preview("Subject: x\n\n" + "word " * 100) == ("word " * 40).strip()


def test_unknown_transfer_encoding_and_control_characters() -> None:
    assert _preview("Content-Transfer-Encoding: x-uuencode\n\nbegin 644\n") == ""
    assert _preview("Subject: x\n\na\x01b\x7fc\n") == "abc"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab \t\r\n\x01\x7f\x85\x9f\xa0é中"), max_size=3000),
    limit=st.sampled_from([10, 200, 256]),
)
def test_collapse_of_a_long_text_is_its_prefix_done_whole(text: str, limit: int) -> None:
    """`collapse` may look at a prefix only: the answer is the one of the whole text."""
    whole = _CONTROL_RE.sub("", _SPACE_RE.sub(" ", text)).strip()[:limit].rstrip()
    assert collapse(text, limit) == whole
