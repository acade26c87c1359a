"""``coi backup`` and ``coi restore`` of the PostgreSQL store: pg_dump while the store is
in use, pg_restore into a database without users, and the refusals (docs/deploy.md:
Backups)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests import pg
from tests.contract.helpers import message
from tests.integration.test_backup import coi

from coi.store.model import SEEN, Flags

pytest.importorskip("asyncpg")

from coi.store.postgres.store import PostgresStore


async def test_backup_and_restore_of_the_postgresql_store(
    tmp_path: Path, postgres_cluster: pg.Cluster, postgres_dsn: str
) -> None:
    live = PostgresStore(postgres_dsn)
    try:
        user = await live.add_user("alice@example.org", "hash", [("Sent", "\\Sent")])
        inbox = live.get_mailbox(user.id, "INBOX")
        assert inbox is not None
        sent = message("kept", "the body\r\n", flags=("\\Seen",))
        await live.append(inbox.id, [sent])
        # taken while the store is open and in use, as with coi serve running
        code, out = await coi("backup", str(tmp_path / "b"), "--store", postgres_dsn,
                              "--data-dir", str(tmp_path / "data"))  # fmt: skip
    finally:
        live.close()
    assert code == 0, out
    assert (tmp_path / "b" / "store.pgdump").is_file()

    target = postgres_cluster.dsn(postgres_cluster.new_database())  # coi's schema, no users
    try:
        args = ["restore", str(tmp_path / "b"), "--store", target, "--data-dir"]
        code, out = await coi(*args, str(tmp_path / "restored"))
        assert code == 0, out
        assert "restored the PostgreSQL store" in out
        code, out = await coi(*args, str(tmp_path / "again"))  # users there now: refused
        assert code == 1 and "already holds users" in out and "--force" in out, out
        code, out = await coi(*args, str(tmp_path / "again"), "--force")
        assert code == 0, out

        restored = PostgresStore(target)
        try:
            again = restored.get_user("alice@example.org")
            assert again is not None and again.password_hash == "hash"
            box = restored.get_mailbox(again.id, "INBOX")
            assert box is not None and list(restored.uids(box.id)) == [1]  # once, not twice
            row = restored.rows(box.id, [1])[1]
            assert row.flags == Flags(SEEN)
            assert restored.blob(row.blob_id) == (sent.raw, sent.meta)
            assert restored.get_mailbox(again.id, "Sent") is not None
        finally:
            restored.close()
    finally:
        postgres_cluster.drop_database(target.rsplit("/", 1)[1])


async def test_a_backup_goes_back_only_where_it_came_from(
    tmp_path: Path, postgres_dsn: str
) -> None:
    code, out = await coi("backup", str(tmp_path / "b"), "--data-dir", str(tmp_path / "none"))
    assert code == 1 and "holds no coi store" in out, out
    code, out = await coi("backup", str(tmp_path / "b"), "--store", postgres_dsn,
                          "--data-dir", str(tmp_path / "data"))  # fmt: skip
    assert code == 0, out
    # a dump of PostgreSQL is not restored into a data directory, nor the other way round
    code, out = await coi("restore", str(tmp_path / "b"), "--data-dir", str(tmp_path / "r"))
    assert code == 1 and "give --store postgresql://" in out, out
    # a store that cannot be reached is one line, without the password
    code, out = await coi("backup", str(tmp_path / "c"), "--store",
                          "postgresql://coi:secret@127.0.0.1:1/coi")  # fmt: skip
    assert code == 1 and "cannot reach the store" in out, out
    assert "secret" not in out and "Traceback" not in out and len(out.splitlines()) == 1


async def test_backup_and_restore_of_a_sharded_store(
    tmp_path: Path,
    sharded_dsns: tuple[str, str],
    postgres_cluster: pg.Cluster,
    second_postgres_cluster: pg.Cluster,
) -> None:
    """Each shard in a dump of its own, the directory last; restored into new databases
    (the shard elsewhere with --shard, and the map says so), a user on each shard."""
    from coi.store.postgres.sharded import SHIFT, list_shards, open_sharded

    directory, shard = sharded_dsns
    live = open_sharded(PostgresStore(directory))
    assert live is not None
    try:
        mails = {}
        for address in ("alice@example.org", "bob@example.org"):  # on shards 0 and 1
            user = await live.add_user(address, "hash", [])
            inbox = live.get_mailbox(user.id, "INBOX")
            assert inbox is not None
            mails[address] = message(f"for {address}")
            await live.append(inbox.id, [mails[address]])
        code, out = await coi("backup", str(tmp_path / "b"), "--store", directory,
                              "--data-dir", str(tmp_path / "data"))  # fmt: skip
    finally:
        live.close()
    assert code == 0, out
    assert out.index("dumping shard 1") < out.index("dumping the PostgreSQL store"), out
    assert {p.name for p in (tmp_path / "b").glob("*.pgdump")} == {
        "store.pgdump", "shard-1.pgdump",
    }  # fmt: skip

    target = postgres_cluster.dsn(postgres_cluster.new_database())
    moved = second_postgres_cluster.dsn(second_postgres_cluster.new_database())
    try:
        args = ["restore", str(tmp_path / "b"), "--store", target]
        code, out = await coi(*args, "--shard", moved, "--data-dir", str(tmp_path / "r"))
        assert code == 2 and "is not N=postgresql://..." in out and "Traceback" not in out, out
        code, out = await coi(*args, "--shard", "2=" + moved, "--data-dir", str(tmp_path / "r"))
        assert code == 1 and "holds no shard 2 (its shards: 1)" in out, out
        # the shard's own database still holds its users: refused before anything is written
        code, out = await coi(*args, "--data-dir", str(tmp_path / "r"))
        assert code == 1 and f"{shard} already holds users" in out, out
        assert "restoring" not in out
        code, out = await coi(*args, "--shard", "1=" + moved, "--data-dir", str(tmp_path / "r"))
        assert code == 0, out
        assert out.index("restoring shard 1") < out.index("restoring the PostgreSQL store")

        restored = open_sharded(PostgresStore(target))
        assert restored is not None
        try:
            assert [(s.id, s.dsn, s.users) for s in list_shards(restored.directory)] == [
                (0, "", 1), (1, moved, 1),
            ]  # fmt: skip
            for address, number in (("alice@example.org", 0), ("bob@example.org", 1)):
                user = restored.get_user(address)
                assert user is not None and user.id >> SHIFT == number
                box = restored.get_mailbox(user.id, "INBOX")
                assert box is not None and list(restored.uids(box.id)) == [1]
                row = restored.rows(box.id, [1])[1]
                assert restored.blob(row.blob_id) == (mails[address].raw, mails[address].meta)
        finally:
            restored.close()
    finally:
        postgres_cluster.drop_database(target.rsplit("/", 1)[1])
        second_postgres_cluster.drop_database(moved.rsplit("/", 1)[1])
