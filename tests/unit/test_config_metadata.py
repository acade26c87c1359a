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
