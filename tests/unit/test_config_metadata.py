"""METADATA and COI settings in ServerConfig: defaults and RFC 5464 §4.1 minimums."""

from __future__ import annotations

import pytest

from coi.config import ConfigError, ServerConfig, merge


def test_defaults_and_minimums() -> None:
    config = ServerConfig()
    assert config.coi_mailbox_root == "COI"
    assert config.metadata_max_value >= 1024 and config.metadata_max_entries >= 10
    changed = merge(config, {"metadata-max-value": "1024", "coi_mailbox_root": "Chat"}, "test")
    assert changed.metadata_max_value == 1024 and changed.coi_mailbox_root == "Chat"
    with pytest.raises(ConfigError, match="at least 1024"):
        merge(config, {"metadata_max_value": 1023}, "test")
    with pytest.raises(ConfigError, match="at least 10"):
        merge(config, {"metadata_max_entries": 9}, "test")


def test_store_is_empty_or_a_postgresql_url() -> None:
    """`store` in the config file (or --store) picks PostgreSQL; empty keeps SQLite."""
    assert ServerConfig().store == ""
    url = "postgresql://coi@db.example/mail"
    assert merge(ServerConfig(), {"store": url}, "file").store == url
    assert merge(ServerConfig(), {"store": "postgres://h/db"}, "file").store == "postgres://h/db"
    with pytest.raises(ConfigError, match="postgresql://"):
        merge(ServerConfig(), {"store": "/var/lib/coi/coi.sqlite3"}, "file")


def test_store_url_is_shown_without_its_password() -> None:
    from coi.cli.common import redact

    assert redact("postgresql://coi:s3cret@db:5432/mail") == "postgresql://coi:***@db:5432/mail"
    assert redact("postgresql://coi@db/mail") == "postgresql://coi@db/mail"
