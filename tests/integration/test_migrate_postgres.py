"""`coi migrate --from DATA_DIR --to postgresql://...` (issue 17): an installation moves to
PostgreSQL and its clients notice nothing: same UIDVALIDITY, UIDs, flags, MODSEQs,
EMAILIDs and MAILBOXIDs, METADATA, aliases and quotas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.contract.helpers import message

from coi.mail.search import fold_for_search
from coi.store.model import DELETED, SEEN, Flags
from coi.store.protocol import Store
from coi.store.sqlite.store import SqliteStore


async def _fill(store: Store) -> None:
    alice = await store.add_user("alice@x.org", "hash-a", [("Sent", "\\Sent")])
    bob = await store.add_user("bob@x.org", "hash-b", [])
    gone = await store.add_user("gone@x.org", "h", [])
    await store.set_alias("info@x.org", "alice@x.org")
    await store.set_quota("alice@x.org", 10_000_000)
    inbox = store.get_mailbox(alice.id, "INBOX")
    assert inbox is not None
    await store.append(inbox.id, [message(f"m{i}", f"body {i} lunch") for i in range(6)])
    await store.store_flags(inbox.id, [1, 2], "add", Flags(DELETED))
    await store.store_flags(inbox.id, [3], "add", Flags(SEEN, ("$chat",)))
    await store.expunge(inbox.id)
    work = await store.create_mailbox(alice.id, "Work/Projects")
    await store.copy(inbox.id, [3, 4], work.id)
    await store.set_subscribed(alice.id, "Work/Projects", True)
    await store.set_metadata(alice.id, 0, [("/private/vendor/x", b"1"), ("/shared/c", b"\0z")])
    await store.set_metadata(alice.id, work.id, [("/private/comment", b"work")])
    bobs = store.get_mailbox(bob.id, "INBOX")
    assert bobs is not None
    await store.append(bobs.id, [message("hi bob")])
    await store.delete_user(gone.address)


async def _snapshot(store: Store) -> dict[str, object]:
    """Everything a client can see, read through the Protocol."""
    out: dict[str, object] = {"users": store.list_users()}
    for user in store.list_users():
        boxes = store.list_mailboxes(user.id)
        out[f"{user.address} boxes"] = boxes
        out[f"{user.address} mailboxids"] = [store.mailboxid(b) for b in boxes]
        out[f"{user.address} subscriptions"] = store.subscriptions(user.id)
        out[f"{user.address} quota"] = (store.quota_of(user.id), store.storage_used(user.id))
        out[f"{user.address} server metadata"] = store.get_metadata(user.id, 0, [""], "infinity")
        for box in boxes:
            uids = list(store.uids(box.id))
            rows = list(store.row_tuples(box.id, uids))
            blob_ids = [row[7] for row in rows]
            out[f"{box.id} rows"] = rows
            out[f"{box.id} status"] = store.status(box)
            out[f"{box.id} emailids"] = [store.emailid(b) for b in blob_ids]
            out[f"{box.id} bodies"] = await store.blobs(blob_ids)
            out[f"{box.id} previews"] = store.previews(blob_ids)
            out[f"{box.id} metadata"] = store.get_metadata(user.id, box.id, [""], "infinity")
    out["alias"] = store.alias_target("info@x.org")
    return out


def _migrate(source: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coi.cli.main", "migrate", "--from", str(source), "--to", dsn],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_migrate_keeps_everything_clients_know(tmp_path: Path, postgres_dsn: str) -> None:
    from coi.store.postgres.store import PostgresStore

    sqlite = SqliteStore(tmp_path / "coi.sqlite3")
    await _fill(sqlite)
    before = await _snapshot(sqlite)
    alice = sqlite.get_user("alice@x.org")
    assert alice is not None
    inbox = sqlite.get_mailbox(alice.id, "INBOX")
    assert inbox is not None
    vanished = await sqlite.vanished_since(inbox.id, 0)
    sqlite.close()

    done = _migrate(tmp_path, postgres_dsn)
    assert done.returncode == 0, done.stderr
    assert "moved 2 users" in done.stdout and "messages: " in done.stderr

    pg = PostgresStore(postgres_dsn)
    try:
        assert await _snapshot(pg) == before
        assert await pg.vanished_since(inbox.id, 0) == vanished == [1, 2]
        needles = [("text", fold_for_search("LUNCH"))]
        assert await pg.text_matches(inbox.id, needles) == {3, 4, 5, 6}
        # what PostgreSQL hands out next never repeats what SQLite did
        carol = await pg.add_user("carol@x.org", "h", [])
        assert carol.id not in {u.id for u in before["users"]}  # type: ignore[attr-defined]
        newer = await pg.create_mailbox(alice.id, "Later")
        old_boxes = before["alice@x.org boxes"]
        assert newer.id > max(b.id for b in old_boxes)  # type: ignore[attr-defined]
        assert newer.uidvalidity > max(b.uidvalidity for b in old_boxes)  # type: ignore[attr-defined]
        _, uids = await pg.append(inbox.id, [message("after")])
        assert uids == [7]
        new_blob = pg.rows(inbox.id, uids)[7].blob_id
        old_blobs = [r[7] for r in before[f"{inbox.id} rows"]]  # type: ignore[attr-defined]
        assert new_blob > max(old_blobs)
    finally:
        pg.close()
    again = _migrate(tmp_path, postgres_dsn)  # the target is no longer empty
    assert again.returncode == 1 and "already holds users" in again.stderr


def test_migrate_needs_a_store_and_a_postgresql_url(tmp_path: Path) -> None:
    missing = _migrate(tmp_path, "postgresql://nobody@127.0.0.1:1/x")
    assert missing.returncode == 1 and "no store" in missing.stderr
    wrong = _migrate(tmp_path, "sqlite:///x")
    assert wrong.returncode == 2 and "postgresql://" in wrong.stderr
