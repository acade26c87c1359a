from __future__ import annotations

import argparse
import json

import pytest

from coi.cli.message import register

from .conftest import DATA


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="coi")
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_inspect_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["message", "inspect", str(DATA / "spec/05-preview-message-parts.eml")]) == 0
    out = capsys.readouterr().out
    assert "kind:          media" in out
    assert "video/webm bigbuckbunny.webm" in out and "(+ preview)" in out
    # The spec example's "... base64-encoded webm video data goes here ..." is no base64.
    assert "defects:\n  - base64 body with a dangling character" in out


def test_inspect_clean_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["message", "inspect", str(DATA / "spec/01-text-messages.eml")]) == 0
    out = capsys.readouterr().out
    assert "  | Hello World" in out
    assert "defects:       none" in out


def test_inspect_names_the_system_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["message", "inspect", str(DATA / "deltachat/keyupdate.inner.eml")]) == 0
    out = capsys.readouterr().out
    assert "kind:          system" in out
    assert "system event:  key-update" in out


def test_inspect_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["message", "inspect", "--json", str(DATA / "deltachat/plain-group.eml")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dialect"] == "deltachat"
    assert report["group"] == {"id": None, "name": "COI group 720bad"}
    assert report["is_chat_message"] is True
    assert report["sender"]["addr"] == "alice@example.org"


def test_inspect_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert _run(["message", "inspect", "/nonexistent/x.eml"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_help_exits_cleanly() -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(["message", "--help"])
    assert exit_info.value.code == 0
