"""The Web Push service's kept list of validated subscriptions follows the store's events."""

from __future__ import annotations

from pathlib import Path

from coi.config import ServerConfig
from coi.store.events import ChangesMissed
from coi.store.sqlite.store import SqliteStore
from coi.webpush.keys import load_keys
from coi.webpush.service import WebPushService


async def test_kept_subscriptions_are_read_again_after_events_were_missed(
    tmp_path: Path,
) -> None:
    """A lost LISTEN connection is back (`ChangesMissed`): subscriptions may have been
    added or removed unheard, so the kept lists go, and a read that spans the event is not
    kept either."""
    store = SqliteStore(tmp_path / "coi.sqlite3")
    service = WebPushService(ServerConfig(data_dir=tmp_path), store, load_keys(tmp_path))
    try:
        user = await store.add_user("alice@example.org", "x", [])
        assert await service._validated_subscriptions(user.id) == []
        assert user.id in service._validated
        store.events.publish(ChangesMissed())
        assert service._validated == {}
    finally:
        await service.stop()
        store.close()
