"""Real Delta Chat messages: well-formed output and parts agree with the stdlib parser."""

from __future__ import annotations

import email
import email.policy
from email.message import Message
from pathlib import Path

import pytest
from tests.unit.mail.mail_wire import check_body, parse

from coi.mail import decoded_part, dump_index, index_message, load_index, section_bytes
from coi.mail.index import Part

DATA = Path(__file__).parents[2] / "data" / "mail"
SAMPLES = sorted((DATA / "deltachat").glob("*.eml"))


def crlf(raw: bytes) -> bytes:
    """The server stores messages CRLF-normalized."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _leaves(p: Part) -> list[Part]:
    if p.is_multipart:
        return [leaf for c in p.children for leaf in _leaves(c)]
    return [p]


def _std_leaves(m: Message) -> list[Message]:
    if m.is_multipart():
        return [leaf for c in m.get_payload() for leaf in _std_leaves(c)]  # type: ignore[union-attr]
    return [m]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample(path: Path) -> None:
    raw = crlf(path.read_bytes())
    ix = index_message(raw)
    env = parse(ix.envelope)
    assert isinstance(env, list) and len(env) == 10
    check_body(parse(ix.body), extended=False)
    check_body(parse(ix.bodystructure), extended=True)
    assert load_index(dump_index(ix)) == ix
    assert ix.sent_date is not None and ix.sent_date.tzinfo is not None

    std = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert not std.defects or path.name == "plain-attachment.eml"  # that one is truncated
    ours = _leaves(ix.root)
    theirs = _std_leaves(std)
    assert [p.content_type for p in ours] == [m.get_content_type() for m in theirs]
    for p, m in zip(ours, theirs, strict=True):
        payload = m.get_payload(decode=True)
        assert isinstance(payload, bytes)
        got = decoded_part(raw, ix, p.path or (1,))
        assert got is not None
        if p.encoding == "base64":
            assert got == payload
        else:  # the stdlib keeps the CRLF before the delimiter only sometimes
            assert got.rstrip(b"\r\n") == payload.rstrip(b"\r\n")
        mime = section_bytes(raw, ix, p.path or (1,), "MIME")
        assert mime is not None and mime.endswith(b"\r\n\r\n")


def test_bare_lf_sample_does_not_crash() -> None:
    for path in SAMPLES:
        raw = path.read_bytes().replace(b"\r\n", b"\n")
        ix = index_message(raw)
        check_body(parse(ix.bodystructure), extended=True)
        assert section_bytes(raw, ix, (), "HEADER", ()) is not None
