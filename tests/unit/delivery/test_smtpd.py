"""FastSMTP's address parsing gives exactly what aiosmtpd's gives."""

from __future__ import annotations

from types import SimpleNamespace

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from coi.delivery.smtpd import _SIMPLE_PATH, FastSMTP

PIECES = st.sampled_from(
    ["a", "Bob", "x-1", ".", "..", "@", "<", ">", " ", "\t", "(c)", "(", '"q u"', "[1.2.3.4]",
     "!#$%&'*+/=?^_`{|}~", "é", ",", ":", "SIZE=10", "BODY=8BITMIME", "=", "\\"]
)  # fmt: skip
WORD = st.lists(st.sampled_from(["a", "b-c", "x_1", "!#$", "."]), min_size=1, max_size=4)


def both(arg: str, limit: int = 0) -> tuple[object, object]:
    """(ours, aiosmtpd's): the result, or the exception type (email's parser has bugs)."""
    stub = SimpleNamespace(local_part_limit=limit)
    out: list[object] = []
    for parse in (FastSMTP._getaddr, SMTP._getaddr):
        try:
            out.append(parse(stub, arg))
        except Exception as exc:
            out.append(type(exc))
    if isinstance(out[1], type):  # email's parser fails on some addresses: ours refuses them
        out[1] = (None, None)
    return out[0], out[1]


@settings(max_examples=1000, deadline=None)
@given(st.lists(PIECES, max_size=10).map("".join))
def test_any_argument(arg: str) -> None:
    ours, theirs = both(arg)
    assert ours == theirs


@settings(max_examples=1000, deadline=None)
@given(
    local=WORD.map("".join),
    domain=WORD.map("".join),
    rest=st.lists(PIECES, max_size=4).map("".join),
    limit=st.sampled_from([0, 3, 64]),
)
def test_paths(local: str, domain: str, rest: str, limit: int) -> None:
    ours, theirs = both(f"<{local}@{domain}>{rest}", limit)
    assert ours == theirs


def test_common_forms_take_the_fast_path() -> None:
    for arg in ("<carol@elsewhere.example>", "<a.b@c.d> SIZE=100 BODY=8BITMIME", "<x@y>\t"):
        assert _SIMPLE_PATH.fullmatch(arg), arg
        ours, theirs = both(arg)
        assert ours == theirs
    assert both("<carol@elsewhere.example> SIZE=100")[0] == ("carol@elsewhere.example", "SIZE=100")
    for arg in ("<>", '<"q u"@b>', "<a@[1.2.3.4]>", "<@r:a@b>", "<a@b> (c)", "<é@b>"):
        assert not _SIMPLE_PATH.fullmatch(arg), arg


def test_address_that_is_not_utf8_is_malformed() -> None:
    """RFC 6531 §3.3 (found by bench/fuzz smtp): aiosmtpd keeps such octets as surrogates,
    which no store lookup can encode; the address is refused (553) instead."""
    stub = SimpleNamespace(local_part_limit=0)
    for arg in ("<\udcff@example.org>", "<a@\udcc3x.example>", '"\udcff"@example.org'):
        assert FastSMTP._getaddr(stub, arg) == (None, None), arg
    assert FastSMTP._getaddr(stub, "<jörg@example.org>") == ("jörg@example.org", "")


def test_address_that_breaks_the_email_parser_is_malformed() -> None:
    """`RCPT TO:<"`, `<"a,"@[b>` (found by bench/fuzz smtp): email's parser raised IndexError
    or AttributeError, which aiosmtpd answered with "500 Error: (...)"; they are malformed."""
    stub = SimpleNamespace(local_part_limit=0)
    for arg in ('<"', '"', '<"quoted loca,"@[xample.org>'):
        assert FastSMTP._getaddr(stub, arg) == (None, None), arg
