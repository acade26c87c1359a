"""The `coi` command line: help everywhere, user management, config file and flags."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from coi.auth.passwords import verify_password
from coi.cli.main import build_parser
from coi.config import ConfigError, load, parse_listen
from coi.store.sqlite.store import SqliteStore


def coi(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coi.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["serve", "--help"],
        ["user", "--help"],
        ["user", "add", "--help"],
        ["user", "del", "--help"],
        ["user", "passwd", "--help"],
        ["user", "list", "--help"],
        ["queue", "list", "--help"],
        ["queue", "flush", "--help"],
        ["queue", "delete", "--help"],
        ["dkim", "keygen", "--help"],
    ],
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 0
    assert "usage: coi" in capsys.readouterr().out


def test_each_command_is_found_in_its_own_module() -> None:
    """`coi COMMAND` builds the parser of COMMAND's module alone (start-up time); every
    command of the whole parser must be there, with the same options."""
    full = build_parser()
    [sub] = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    for name, whole in sub.choices.items():
        alone = build_parser(name)
        [own] = [a for a in alone._actions if isinstance(a, argparse._SubParsersAction)]
        assert name in own.choices and len(own.choices) < len(sub.choices), name
        assert own.choices[name].format_help() == whole.format_help(), name


def test_a_chat_command_does_not_load_the_server(tmp_path: Path) -> None:
    probe = (
        "import sys; from coi.cli.main import main\n"
        "try:\n    main(['chats', '--profile', sys.argv[1]])\n"
        "finally:\n    print(sorted(m for m in ('coi.imap.server.server', 'mf2py', 'aiohttp')"
        " if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    lines = run.stdout.splitlines()
    assert lines == ["no account yet: add one with 'coi account add ADDRESS'", "[]"], run.stderr


def test_serve_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--data-dir",
        "--imap",
        "--imaps",
        "--allow-plaintext-auth",
        "--tls-cert",
        "--config",
        "--max-literal",
        "--idle-timeout",
    ):
        assert flag in text
    flat = " ".join(text.split())  # argparse wraps lines
    assert "(default: )" not in flat  # an empty default is not shown as nothing
    assert "first start) (default" not in flat  # --tls-cert says its default once


def test_user_lifecycle(tmp_path: Path) -> None:
    data = str(tmp_path)
    added = coi(
        "user", "add", "Carol@Example.org", "--password-stdin", "--data-dir", data, stdin="s3cret\n"
    )
    assert added.returncode == 0, added.stderr
    again = coi(
        "user", "add", "carol@example.org", "--password-stdin", "--data-dir", data, stdin="x\n"
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    piped = coi("user", "add", "dave@example.org", "--data-dir", data, stdin="s3cret\n")
    assert piped.returncode == 1  # no terminal, no --password-stdin: not read in clear
    assert piped.stderr == (
        "coi: no terminal to ask for the password: use --password-stdin or --password-file\n"
    )
    assert coi("user", "list", "--data-dir", data).stdout.split() == ["carol@example.org"]
    pw = tmp_path / "pw"
    pw.write_text("n3w\n")
    assert (
        coi(
            "user", "passwd", "carol@example.org", "--password-file", str(pw), "--data-dir", data
        ).returncode
        == 0
    )
    store = SqliteStore(tmp_path / "coi.sqlite3")
    try:
        user = store.get_user("carol@example.org")
        assert user is not None and verify_password("n3w", user.password_hash)
        assert [m.name for m in store.list_mailboxes(user.id)] == [
            "Archive",
            "Drafts",
            "INBOX",
            "Junk",
            "Sent",
            "Trash",
        ]
    finally:
        store.close()
    assert coi("user", "del", "carol@example.org", "--data-dir", data).returncode == 0
    assert coi("user", "list", "--data-dir", data).stdout == ""
    missing = coi("user", "del", "nobody@example.org", "--data-dir", data)
    assert missing.returncode == 1 and "no such user" in missing.stderr


def test_bad_address_is_refused(tmp_path: Path) -> None:
    result = coi(
        "user",
        "add",
        "not-an-address",
        "--password-stdin",
        "--data-dir",
        str(tmp_path),
        stdin="x\n",
    )
    assert result.returncode != 0 and "is not an e-mail address" in result.stderr


def _args(parser_argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *parser_argv])


def test_flags_override_config_file(tmp_path: Path) -> None:
    config = tmp_path / "coi.toml"
    config.write_text('imap = "127.0.0.1:2143"\nidle_timeout = 900\nallow_plaintext_auth = true\n')
    loaded = load(_args(["--config", str(config), "--imap", "127.0.0.1:3143"]))
    assert loaded.imap == "127.0.0.1:3143"
    assert loaded.idle_timeout == 900.0
    assert loaded.allow_plaintext_auth is True


def test_config_errors_say_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "coi.toml"
    config.write_text("imapp = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'imapp'"):
        load(_args(["--config", str(config)]))
    config.write_text("max_line = 'lots'\n")
    with pytest.raises(ConfigError, match="max_line"):
        load(_args(["--config", str(config)]))
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_listen("localhost", "--imap")
    assert parse_listen("off", "--imap") is None
    assert parse_listen("[::1]:143", "--imap") == ("::1", 143)
    config.write_text('relay_tls = "yes"\n')
    with pytest.raises(ConfigError, match="relay_tls = 'yes': use starttls, tls, none"):
        load(_args(["--config", str(config)]))
    with pytest.raises(ConfigError, match="max_connections_per_ip must be at least 1"):
        load(_args(["--max-connections-per-ip", "0"]))


def test_serve_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from coi.cli.main import main

    base = ["serve", "--data-dir", str(tmp_path), "--imaps", "off", "--lmtp", "off",
            "--submission", "off", "--submissions", "off"]  # fmt: skip
    assert main([*base, "--imap", "127.0.0.1:99999"]) == 2
    assert "is not HOST:PORT" in capsys.readouterr().err
    missing = str(tmp_path / "missing.pem")
    assert main([*base, "--imap", "off", "--tls-cert", missing, "--tls-key", missing]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--tls-cert {missing}: no such file" in err


def test_queue_and_dkim_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from coi.cli.main import main
    from coi.delivery.queue import RelayQueue

    def run(*argv: str) -> tuple[int, str]:
        code = main([*argv, "--data-dir", str(tmp_path)])
        return code, capsys.readouterr().out

    queue = RelayQueue(tmp_path / "queue.sqlite3")
    message_id = queue.enqueue("alice@example.org", ["carol@remote.example"], b"Subject: x\r\n")
    queue.defer([queue.list()[0].recipients[0].id], "421 busy", 4_000_000_000.0)
    queue.close()
    code, out = run("queue", "list")
    assert code == 0
    assert f"{message_id}  from <alice@example.org>" in out
    assert "to <carol@remote.example>  attempts 1" in out and "last error: 421 busy" in out
    assert run("queue", "flush") == (0, "1 recipient(s) due now\n")
    assert run("queue", "delete", str(message_id))[0] == 0
    assert run("queue", "delete", str(message_id))[0] == 1
    assert run("queue", "list") == (0, "queue is empty\n")
    code, out = run("dkim", "keygen", "Example.org")
    assert code == 0
    assert 'coi._domainkey.example.org. IN TXT "v=DKIM1; k=rsa; p=' in out
    assert (tmp_path / "dkim" / "example.org.pem").stat().st_mode & 0o077 == 0


def test_coi_detect_encrypted_is_on_by_default_and_can_be_switched_off(tmp_path: Path) -> None:
    assert load(_args([])).coi_detect_encrypted is True
    assert load(_args(["--no-coi-detect-encrypted"])).coi_detect_encrypted is False
    config = tmp_path / "coi.toml"
    config.write_text("coi_detect_encrypted = false\n")
    assert load(_args(["--config", str(config)])).coi_detect_encrypted is False
    on = load(_args(["--config", str(config), "--coi-detect-encrypted"]))
    assert on.coi_detect_encrypted is True


def test_dkim_keygen_refuses_a_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from coi.cli.main import main

    assert main(["dkim", "keygen", "../../etc", "--data-dir", str(tmp_path)]) == 2
    assert "is not a domain name" in capsys.readouterr().err
    assert not (tmp_path / "etc.pem").exists() and not list(tmp_path.rglob("*.pem"))
