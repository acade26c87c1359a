"""Append-only numbered schema migrations of the PostgreSQL store. Never edit a released
step; add a new one.

The schema follows the SQLite one (coi.store.sqlite.migrations) with these differences:
- names that are compared or ordered byte by byte (mailbox names, METADATA entry names)
  are `COLLATE "C"`, whatever the database's collation, so ordering and the range scans
  of METADATA depth match SQLite's;
- message bodies (`bodies.raw`) live in a table of their own, apart from the per-body
  index and search data (`blobs`), so small reads never touch large attachments;
- body ids come from a sequence, which never hands out a number twice (RFC 8474 §5.1:
  an EMAILID must never name other content);
- SEARCH text narrowing uses a pg_trgm GIN index on the folded header lines
  (`search_text.header`), so `LIKE '%needle%'` on them is an index lookup; the stored
  search data (`blobs.search`) is scanned for body text, as SQLite scans it (step 7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy
from coi.store.sqlite.migrations import SchemaTooNew

__all__ = ["MIGRATIONS", "SchemaTooNew", "migrate"]

MIGRATIONS: tuple[str, ...] = (
    # 1: the whole schema of SQLite's steps 1-8
    """
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE TABLE meta (
        key text PRIMARY KEY,
        value text NOT NULL DEFAULT ''
    );
    INSERT INTO meta (key, value)
        VALUES ('objectid_key', replace(gen_random_uuid()::text, '-', '')),
               ('uidvalidity', '0');
    CREATE TABLE users (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        address text NOT NULL UNIQUE,
        password_hash text NOT NULL DEFAULT '',
        created bigint NOT NULL DEFAULT 0,
        quota bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE aliases (
        address text PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE
    );
    CREATE INDEX aliases_user ON aliases (user_id);
    CREATE TABLE mailboxes (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name text COLLATE "C" NOT NULL,
        uidvalidity bigint NOT NULL,
        uidnext bigint NOT NULL DEFAULT 1,
        highestmodseq bigint NOT NULL DEFAULT 1,
        special_use text NOT NULL DEFAULT '',
        keywords text NOT NULL DEFAULT '',
        recent_floor bigint NOT NULL DEFAULT 0,
        noselect boolean NOT NULL DEFAULT false,
        UNIQUE (user_id, name)
    );
    CREATE TABLE subscriptions (
        user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name text COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    CREATE SEQUENCE blob_ids;
    CREATE TABLE blobs (
        id bigint PRIMARY KEY,
        meta bytea NOT NULL,
        search bytea NOT NULL,
        refs integer NOT NULL DEFAULT 1
    );
    CREATE TABLE bodies (
        blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
        raw bytea NOT NULL
    );
    CREATE TABLE search_text (
        blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
        header text,
        body text NOT NULL
    );
    CREATE INDEX search_text_header ON search_text USING gin (header gin_trgm_ops);
    CREATE INDEX search_text_body ON search_text USING gin (body gin_trgm_ops);
    CREATE TABLE previews (
        blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
        text text NOT NULL
    );
    CREATE TABLE messages (
        mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
        uid bigint NOT NULL,
        blob_id bigint NOT NULL REFERENCES blobs (id),
        flags integer NOT NULL DEFAULT 0,
        keywords text NOT NULL DEFAULT '',
        modseq bigint NOT NULL,
        size bigint NOT NULL,
        internaldate bigint NOT NULL,
        tz_minutes integer NOT NULL DEFAULT 0,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
    CREATE INDEX messages_unseen ON messages (mailbox_id, uid) WHERE flags & 1 = 0;
    CREATE INDEX messages_blob ON messages (blob_id);
    CREATE TABLE expunged (
        mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
        uid bigint NOT NULL,
        modseq bigint NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
    CREATE TABLE metadata (
        user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        mailbox_id bigint NOT NULL DEFAULT 0,
        name text COLLATE "C" NOT NULL,
        value bytea NOT NULL DEFAULT '',
        PRIMARY KEY (user_id, mailbox_id, name)
    );
    """,
    # 2: the relay queue (coi.delivery.pgqueue), shared by every process. A recipient being
    # sent is claimed: `claimed_by` names the worker, `next_attempt` is its lease's end.
    """
    CREATE TABLE relay_messages (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sender text NOT NULL DEFAULT '',
        raw bytea NOT NULL,
        created double precision NOT NULL DEFAULT 0
    );
    CREATE TABLE relay_recipients (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id bigint NOT NULL REFERENCES relay_messages (id) ON DELETE CASCADE,
        rcpt text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt double precision NOT NULL DEFAULT 0,
        last_error text NOT NULL DEFAULT '',
        claimed_by text NOT NULL DEFAULT ''
    );
    CREATE INDEX relay_recipients_due ON relay_recipients (next_attempt);
    CREATE INDEX relay_recipients_message ON relay_recipients (message_id);
    """,
    # 3: the \Recent floor that sessions of every process claim from (Store.take_recent),
    # apart from the mailbox row that every message write holds locked until its COMMIT: a
    # claim waits only for other claims, one short statement each. No foreign key (its
    # check would wait for the mailbox row too); ids are never reused, and the row goes
    # with its mailbox in `_delete_mailbox_rows`.
    """
    CREATE TABLE recent_floors (
        mailbox_id bigint PRIMARY KEY,
        floor bigint NOT NULL
    );
    """,
    # 4: STORE in one round trip (PostgresStore.store_flags): the mailbox row locked, the
    # new flags computed as coi.store.model.Flags does (keywords sorted by code point,
    # unique), the rows and the mailbox written, the events notified in pieces of at most
    # 7000 bytes (coi.store.postgres.notify's format), all in the call's own transaction.
    # Returns every changed row (failed = false) and every UID that failed UNCHANGEDSINCE,
    # each with the mailbox's owner.
    """
    CREATE FUNCTION coi_store_flags(
        p_mailbox bigint, p_uids bigint[], p_mode text, p_bits integer, p_keywords text[],
        p_unchangedsince bigint, p_token text, p_write bigint
    ) RETURNS TABLE (
        uid bigint, flags integer, keywords text, modseq bigint,
        old_flags integer, old_keywords text, failed boolean, owner bigint
    ) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        v_user bigint;
        v_modseq bigint;
        v_known text;
        v_uids bigint[] := '{}';
        v_bits integer[] := '{}';
        v_texts text[] := '{}';
        v_piece text := '';
        v_entry text;
        v_head text;
        r record;
    BEGIN
        SELECT b.user_id, b.highestmodseq + 1, b.keywords INTO v_user, v_modseq, v_known
            FROM mailboxes b WHERE b.id = p_mailbox FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such mailbox' USING ERRCODE = 'P0002';
        END IF;
        v_head := '[' || to_json(p_token)::text || ',' || p_write || ',';
        FOR r IN
            SELECT m.uid AS u, m.flags AS ob, m.keywords AS ok, m.modseq AS om,
                CASE p_mode WHEN 'set' THEN p_bits WHEN 'add' THEN m.flags | p_bits
                    ELSE m.flags & ~p_bits END AS nb,
                CASE WHEN p_mode = 'set' THEN array_to_string(p_keywords, ' ')
                    WHEN cardinality(p_keywords) = 0 THEN m.keywords
                    ELSE coalesce((SELECT string_agg(k, ' ' ORDER BY k COLLATE "C") FROM (
                        SELECT k FROM unnest(string_to_array(m.keywords, ' ')) k
                            WHERE p_mode = 'add' OR k <> ALL (p_keywords)
                        UNION
                        SELECT k FROM unnest(p_keywords) k WHERE p_mode = 'add') s), '')
                    END AS nk
            FROM messages m WHERE m.mailbox_id = p_mailbox AND m.uid = ANY (p_uids)
            ORDER BY m.uid
        LOOP
            IF p_unchangedsince IS NOT NULL AND r.om > p_unchangedsince THEN
                uid := r.u; flags := r.ob; keywords := r.ok; modseq := r.om;
                old_flags := r.ob; old_keywords := r.ok; failed := true; owner := v_user;
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF r.nb = r.ob AND r.nk = r.ok THEN
                CONTINUE;
            END IF;
            v_uids := v_uids || r.u;
            v_bits := v_bits || r.nb;
            v_texts := v_texts || r.nk;
            uid := r.u; flags := r.nb; keywords := r.nk; modseq := v_modseq;
            old_flags := r.ob; old_keywords := r.ok; failed := false; owner := v_user;
            RETURN NEXT;
            v_entry := json_build_array(r.u, r.nb, r.nk, v_modseq, r.ob, r.ok)::text;
            IF v_piece <> '' AND octet_length(v_piece) + octet_length(v_entry) > 7000 THEN
                PERFORM pg_notify('coi_events', v_head || 'false,["F",' || v_user || ','
                    || p_mailbox || ',[' || v_piece || ']]]');
                v_piece := '';
            END IF;
            v_piece := CASE WHEN v_piece = '' THEN v_entry ELSE v_piece || ',' || v_entry END;
        END LOOP;
        IF v_piece = '' THEN
            RETURN;  -- nothing changed: no write, no event
        END IF;
        IF p_mode <> 'remove' AND NOT string_to_array(v_known, ' ') @> p_keywords THEN
            SELECT coalesce(string_agg(k, ' ' ORDER BY k COLLATE "C"), '') INTO v_known FROM (
                SELECT unnest(string_to_array(v_known, ' ')) AS k
                UNION SELECT unnest(p_keywords)) s;
        END IF;
        UPDATE messages m SET flags = t.nb, keywords = t.nk, modseq = v_modseq
            FROM unnest(v_uids, v_bits, v_texts) AS t(u, nb, nk)
            WHERE m.mailbox_id = p_mailbox AND m.uid = t.u;
        UPDATE mailboxes SET highestmodseq = v_modseq, keywords = v_known WHERE id = p_mailbox;
        PERFORM pg_notify('coi_events', v_head || 'true,["F",' || v_user || ','
            || p_mailbox || ',[' || v_piece || ']]]');
    END
    $fn$;

    -- UIDs (ascending) notified as ranges, in pieces of at most 7000 bytes (notify.py's
    -- format: "A" added, "E" expunged); the last piece is marked `p_last`.
    CREATE FUNCTION coi_notify_uids(
        p_head text, p_kind text, p_user bigint, p_mailbox bigint, p_modseq bigint,
        p_uids bigint[], p_last boolean
    ) RETURNS void LANGUAGE plpgsql AS $fn$
    DECLARE
        v_body text := '",' || p_user || ',' || p_mailbox || ',' || p_modseq || ',[';
        v_piece text := '';
        v_range text;
        v_start bigint;
        v_end bigint;
        v_uid bigint;
    BEGIN
        FOREACH v_uid IN ARRAY p_uids || NULL::bigint LOOP  -- NULL closes the last range
            IF v_start IS NOT NULL AND v_uid = v_end + 1 THEN
                v_end := v_uid;
                CONTINUE;
            END IF;
            IF v_start IS NOT NULL THEN
                v_range := '[' || v_start || ',' || v_end || ']';
                IF v_piece <> '' AND octet_length(v_piece) + octet_length(v_range) > 7000 THEN
                    PERFORM pg_notify('coi_events',
                        p_head || 'false,["' || p_kind || v_body || v_piece || ']]]');
                    v_piece := '';
                END IF;
                v_piece := CASE WHEN v_piece = '' THEN v_range ELSE v_piece || ',' || v_range END;
            END IF;
            v_start := v_uid;
            v_end := v_uid;
        END LOOP;
        PERFORM pg_notify('coi_events',
            p_head || p_last::text || ',["' || p_kind || v_body || v_piece || ']]]');
    END
    $fn$;

    -- Messages of one mailbox (its row locked by the caller) removed: a new mod-sequence,
    -- tombstones (RFC 7162 §3.2.5), their bodies' references released and bodies no
    -- longer used deleted. Returns the mod-sequence.
    CREATE FUNCTION coi_remove_messages(p_mailbox bigint, p_uids bigint[], p_blobs bigint[])
    RETURNS bigint LANGUAGE plpgsql AS $fn$
    DECLARE
        v_modseq bigint;
    BEGIN
        UPDATE mailboxes b SET highestmodseq = b.highestmodseq + 1 WHERE b.id = p_mailbox
            RETURNING b.highestmodseq INTO v_modseq;
        DELETE FROM messages m WHERE m.mailbox_id = p_mailbox AND m.uid = ANY (p_uids);
        INSERT INTO expunged AS e (mailbox_id, uid, modseq)
            SELECT p_mailbox, t.u, v_modseq FROM unnest(p_uids) AS t(u)
            ON CONFLICT ON CONSTRAINT expunged_pkey DO UPDATE SET modseq = excluded.modseq;
        UPDATE blobs b SET refs = b.refs - c.n
            FROM (SELECT t.id, count(*) AS n FROM unnest(p_blobs) AS t(id) GROUP BY t.id) c
            WHERE b.id = c.id;
        DELETE FROM blobs b WHERE b.id = ANY (p_blobs) AND b.refs <= 0;
        RETURN v_modseq;
    END
    $fn$;

    -- EXPUNGE in one round trip (PostgresStore.expunge): the messages flagged deleted (of
    -- p_uids when not null) removed and notified. Returns (uid, blob id, modseq, owner)
    -- of each message expunged.
    CREATE FUNCTION coi_expunge(p_mailbox bigint, p_uids bigint[], p_token text, p_write bigint)
    RETURNS TABLE (uid bigint, blob_id bigint, modseq bigint, owner bigint)
    LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        v_user bigint;
        v_modseq bigint;
        v_uids bigint[];
        v_blobs bigint[];
    BEGIN
        SELECT b.user_id INTO v_user FROM mailboxes b WHERE b.id = p_mailbox FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such mailbox' USING ERRCODE = 'P0002';
        END IF;
        SELECT array_agg(m.uid ORDER BY m.uid), array_agg(m.blob_id ORDER BY m.uid)
            INTO v_uids, v_blobs FROM messages m
            WHERE m.mailbox_id = p_mailbox AND m.flags & 8 <> 0
            AND (p_uids IS NULL OR m.uid = ANY (p_uids));
        IF v_uids IS NULL THEN
            RETURN;
        END IF;
        v_modseq := coi_remove_messages(p_mailbox, v_uids, v_blobs);
        PERFORM coi_notify_uids('[' || to_json(p_token)::text || ',' || p_write || ',', 'E',
            v_user, p_mailbox, v_modseq, v_uids, true);
        RETURN QUERY SELECT t.u, t.b, v_modseq, v_user FROM unnest(v_uids, v_blobs) AS t(u, b);
    END
    $fn$;

    -- COPY and MOVE (RFC 6851) in one round trip (PostgresStore.copy): both mailboxes
    -- locked in id order (two opposite copies cannot deadlock), the rows copied with new
    -- UIDs and the target's keywords, bodies shared (references counted); with p_move the
    -- source rows removed. Returns (old uid, new uid, target UIDVALIDITY, target MODSEQ,
    -- owner, source MODSEQ of the move) per message; one row of NULL UIDs when nothing
    -- was there to copy (nothing written).
    CREATE FUNCTION coi_copy(
        p_source bigint, p_uids bigint[], p_target bigint, p_move boolean, p_token text,
        p_write bigint
    ) RETURNS TABLE (
        old_uid bigint, new_uid bigint, uidvalidity bigint, modseq bigint, owner bigint,
        moved_modseq bigint
    ) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        v_user bigint;
        v_validity bigint;
        v_first bigint;
        v_modseq bigint;
        v_known text;
        v_old bigint[];
        v_blobs bigint[];
        v_keywords text;
        v_count integer;
        v_moved bigint;
        v_head text := '[' || to_json(p_token)::text || ',' || p_write || ',';
    BEGIN
        PERFORM 1 FROM mailboxes b WHERE b.id IN (p_source, p_target) ORDER BY b.id FOR UPDATE;
        SELECT b.user_id, b.uidvalidity, b.uidnext, b.highestmodseq + 1, b.keywords
            INTO v_user, v_validity, v_first, v_modseq, v_known
            FROM mailboxes b WHERE b.id = p_target;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such mailbox' USING ERRCODE = 'P0002';
        END IF;
        SELECT array_agg(m.uid ORDER BY m.uid), array_agg(m.blob_id ORDER BY m.uid),
                string_agg(m.keywords, ' ')
            INTO v_old, v_blobs, v_keywords FROM messages m
            WHERE m.mailbox_id = p_source AND m.uid = ANY (p_uids);
        IF v_old IS NULL THEN
            RETURN QUERY SELECT NULL::bigint, NULL::bigint, v_validity, NULL::bigint, v_user,
                NULL::bigint;
            RETURN;
        END IF;
        v_count := cardinality(v_old);
        INSERT INTO messages (mailbox_id, uid, blob_id, flags, keywords, modseq, size,
                              internaldate, tz_minutes)
            SELECT p_target, v_first + t.n - 1, m.blob_id, m.flags, m.keywords, v_modseq,
                   m.size, m.internaldate, m.tz_minutes
            FROM unnest(v_old) WITH ORDINALITY AS t(u, n)
            JOIN messages m ON m.mailbox_id = p_source AND m.uid = t.u;
        UPDATE blobs b SET refs = b.refs + c.n
            FROM (SELECT t.id, count(*) AS n FROM unnest(v_blobs) AS t(id) GROUP BY t.id) c
            WHERE b.id = c.id;
        SELECT coalesce(string_agg(k, ' ' ORDER BY k COLLATE "C"), '') INTO v_known FROM (
            SELECT unnest(string_to_array(v_known, ' '))
            UNION SELECT unnest(string_to_array(v_keywords, ' '))
        ) AS s(k) WHERE k <> '';
        UPDATE mailboxes b SET uidnext = v_first + v_count, highestmodseq = v_modseq,
            keywords = v_known WHERE b.id = p_target;
        PERFORM pg_notify('coi_events', v_head || (NOT p_move)::text || ',["A",' || v_user
            || ',' || p_target || ',' || v_modseq || ',[[' || v_first || ','
            || (v_first + v_count - 1) || ']]]]');
        IF p_move THEN
            v_moved := coi_remove_messages(p_source, v_old, v_blobs);
            PERFORM coi_notify_uids(v_head, 'E', v_user, p_source, v_moved, v_old, true);
        END IF;
        RETURN QUERY SELECT t.u, v_first + t.n - 1, v_validity, v_modseq, v_user, v_moved
            FROM unnest(v_old) WITH ORDINALITY AS t(u, n);
    END
    $fn$;
    """,
    # 5: the STOREs of one mailbox that wait for their turn, in one round trip (a group
    # commit, PostgresStore.store_flags): each request as its own `coi_store_flags` call,
    # in order, so each gets its own MODSEQ and notifications as if it ran alone. Request
    # i has p_counts[i] UIDs, the next ones of p_uids; its keywords are joined by spaces
    # (IMAP atoms hold none); its notification carries its own write id, p_writes[i].
    """
    CREATE FUNCTION coi_store_flags_many(
        p_mailbox bigint, p_counts integer[], p_uids bigint[], p_modes text[],
        p_bits integer[], p_keywords text[], p_unchangedsince bigint[], p_token text,
        p_writes bigint[]
    ) RETURNS TABLE (
        request integer, uid bigint, flags integer, keywords text, modseq bigint,
        old_flags integer, old_keywords text, failed boolean, owner bigint
    ) LANGUAGE plpgsql AS $fn$
    DECLARE
        v_next integer := 1;
    BEGIN
        FOR i IN 1 .. cardinality(p_counts) LOOP
            RETURN QUERY SELECT i, s.uid, s.flags, s.keywords, s.modseq, s.old_flags,
                s.old_keywords, s.failed, s.owner
                FROM coi_store_flags(p_mailbox, p_uids[v_next : v_next + p_counts[i] - 1],
                    p_modes[i], p_bits[i], string_to_array(p_keywords[i], ' '),
                    p_unchangedsince[i], p_token, p_writes[i]) AS s;
            v_next := v_next + p_counts[i];
        END LOOP;
    END
    $fn$;
    """,
    # 6: message bodies stored out of line without compression (as on SQLite, and as
    # Dovecot's mail files): pglz took a third of delivery's time on 2 MB attachments
    # (base64, which hardly compresses) and again at every FETCH of them. Bodies stored
    # before stay as they are.
    """
    ALTER TABLE bodies ALTER COLUMN raw SET STORAGE EXTERNAL;
    """,
    # 7: no trigram index of the bodies' search text, and no copy of it as text. The index
    # took more than half of delivery's and APPEND's time (every trigram of a 50 KB text,
    # at every message) and the copy doubled what each message wrote; SEARCH BODY and
    # TEXT narrow by scanning the mailbox's stored search data (`blobs.search`) in the
    # database, as SQLite's instr() does. Header lines stay indexed: they are short, cheap
    # to index, and what SEARCH FROM/SUBJECT/TO need. (DROP COLUMN frees no space at once;
    # rows rewritten later, or VACUUM FULL, do.) The search data is stored without
    # compression, as the bodies are (step 6): pglz took 1.7 ms of a 50 KB mail's
    # delivery, and every scan would pay for undoing it.
    """
    DROP INDEX IF EXISTS search_text_body;
    ALTER TABLE search_text DROP COLUMN body;
    ALTER TABLE blobs ALTER COLUMN search SET STORAGE EXTERNAL;
    """,
    # 8: a \Recent claim (PostgresStore.take_recent) in one round trip instead of four,
    # and without waiting for its WAL flush: the claim orders sessions by the row lock,
    # which holds as soon as it commits; what a crash could lose is the claims of the last
    # fraction of a second (wal_writer_delay), so a message could be \Recent once more
    # after a server crash, never lost. Returns the floor before, NULL when the mailbox
    # is gone.
    """
    CREATE FUNCTION coi_take_recent(p_mailbox bigint, p_upto bigint) RETURNS bigint
    LANGUAGE plpgsql AS $fn$
    DECLARE
        v_before bigint;
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        INSERT INTO recent_floors (mailbox_id, floor)
            SELECT b.id, b.recent_floor FROM mailboxes b WHERE b.id = p_mailbox
            ON CONFLICT (mailbox_id) DO NOTHING;
        SELECT r.floor INTO v_before FROM recent_floors r
            WHERE r.mailbox_id = p_mailbox FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        UPDATE recent_floors r SET floor = greatest(v_before, p_upto)
            WHERE r.mailbox_id = p_mailbox;
        RETURN v_before;
    END
    $fn$;

    -- COPY and MOVE as in step 4, telling each copy's flags: in its rows (the copying
    -- process's event) and in its notification while they fit (the other processes'),
    -- so a selected target's state reads no rows.
    DROP FUNCTION coi_copy(bigint, bigint[], bigint, boolean, text, bigint);
    CREATE FUNCTION coi_copy(
        p_source bigint, p_uids bigint[], p_target bigint, p_move boolean, p_token text,
        p_write bigint
    ) RETURNS TABLE (
        old_uid bigint, new_uid bigint, uidvalidity bigint, modseq bigint, owner bigint,
        moved_modseq bigint, flags integer, keywords text
    ) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        v_user bigint;
        v_validity bigint;
        v_first bigint;
        v_modseq bigint;
        v_known text;
        v_old bigint[];
        v_blobs bigint[];
        v_flags integer[];
        v_each text[];
        v_keywords text;
        v_count integer;
        v_moved bigint;
        v_head text := '[' || to_json(p_token)::text || ',' || p_write || ',';
    BEGIN
        PERFORM 1 FROM mailboxes b WHERE b.id IN (p_source, p_target) ORDER BY b.id FOR UPDATE;
        SELECT b.user_id, b.uidvalidity, b.uidnext, b.highestmodseq + 1, b.keywords
            INTO v_user, v_validity, v_first, v_modseq, v_known
            FROM mailboxes b WHERE b.id = p_target;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such mailbox' USING ERRCODE = 'P0002';
        END IF;
        SELECT array_agg(m.uid ORDER BY m.uid), array_agg(m.blob_id ORDER BY m.uid),
                array_agg(m.flags ORDER BY m.uid), array_agg(m.keywords ORDER BY m.uid),
                string_agg(m.keywords, ' ')
            INTO v_old, v_blobs, v_flags, v_each, v_keywords FROM messages m
            WHERE m.mailbox_id = p_source AND m.uid = ANY (p_uids);
        IF v_old IS NULL THEN
            RETURN QUERY SELECT NULL::bigint, NULL::bigint, v_validity, NULL::bigint, v_user,
                NULL::bigint, NULL::integer, NULL::text;
            RETURN;
        END IF;
        v_count := cardinality(v_old);
        INSERT INTO messages (mailbox_id, uid, blob_id, flags, keywords, modseq, size,
                              internaldate, tz_minutes)
            SELECT p_target, v_first + t.n - 1, m.blob_id, m.flags, m.keywords, v_modseq,
                   m.size, m.internaldate, m.tz_minutes
            FROM unnest(v_old) WITH ORDINALITY AS t(u, n)
            JOIN messages m ON m.mailbox_id = p_source AND m.uid = t.u;
        UPDATE blobs b SET refs = b.refs + c.n
            FROM (SELECT t.id, count(*) AS n FROM unnest(v_blobs) AS t(id) GROUP BY t.id) c
            WHERE b.id = c.id;
        SELECT coalesce(string_agg(k, ' ' ORDER BY k COLLATE "C"), '') INTO v_known FROM (
            SELECT unnest(string_to_array(v_known, ' '))
            UNION SELECT unnest(string_to_array(v_keywords, ' '))
        ) AS s(k) WHERE k <> '';
        UPDATE mailboxes b SET uidnext = v_first + v_count, highestmodseq = v_modseq,
            keywords = v_known WHERE b.id = p_target;
        PERFORM pg_notify('coi_events', v_head || (NOT p_move)::text || ',["A",' || v_user
            || ',' || p_target || ',' || v_modseq || ',[[' || v_first || ','
            || (v_first + v_count - 1) || ']]'
            || CASE WHEN octet_length(to_json(v_each)::text) + 12 * v_count < 4000
               THEN ',' || to_json(v_flags)::text || ',' || to_json(v_each)::text
               ELSE '' END || ']]');
        IF p_move THEN
            v_moved := coi_remove_messages(p_source, v_old, v_blobs);
            PERFORM coi_notify_uids(v_head, 'E', v_user, p_source, v_moved, v_old, true);
        END IF;
        RETURN QUERY SELECT t.u, v_first + t.n - 1, v_validity, v_modseq, v_user, v_moved,
                t.f, t.k
            FROM unnest(v_old, v_flags, v_each) WITH ORDINALITY AS t(u, f, k, n);
    END
    $fn$;
    """,
    # 9: the bodies whose header lines are not in `search_text` (NULL: text cannot hold
    # them), which every SEARCH text narrowing must include: with them apart, the header
    # needles' `LIKE` can use the trigram index (PostgresStore.text_matches); before, an
    # `OR header IS NULL` kept it from the index, and SEARCH FROM scanned every header.
    """
    CREATE INDEX search_text_no_header ON search_text (blob_id) WHERE header IS NULL;
    """,
    # 10: each mailbox keeps its STATUS counts (`message_count`, `unseen_count`,
    # `deleted_count`) and the sum of its messages' RFC822.SIZE (`size_sum`), so STATUS
    # reads one row instead of counting every message, and a user's quota usage (read at
    # every delivery, APPEND and COPY under a limit) sums the user's mailboxes rather than
    # every message: tens of ms each for a mailbox of 100,000 messages. Statement-level
    # triggers keep them, whichever statement adds, removes or re-flags messages (APPEND,
    # COPY, MOVE, EXPUNGE, STORE, the importer's COPY FROM); a message's size never
    # changes. Their UPDATE comes after the statement's own lock of the mailbox row, so
    # the writers of one mailbox are already serialized. Flag bits as coi.store.model's:
    # \Seen 1, \Deleted 8.
    """
    ALTER TABLE mailboxes ADD COLUMN message_count bigint NOT NULL DEFAULT 0,
        ADD COLUMN unseen_count bigint NOT NULL DEFAULT 0,
        ADD COLUMN deleted_count bigint NOT NULL DEFAULT 0,
        ADD COLUMN size_sum bigint NOT NULL DEFAULT 0;
    UPDATE mailboxes b SET message_count = s.n, unseen_count = s.u, deleted_count = s.d,
            size_sum = s.total
        FROM (SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE flags & 1 = 0) AS u,
                     count(*) FILTER (WHERE flags & 8 <> 0) AS d, sum(size) AS total
              FROM messages GROUP BY mailbox_id) s
        WHERE b.id = s.mailbox_id;

    -- messages added (INSERT) or removed (DELETE): both triggers name their rows `those`
    CREATE FUNCTION coi_counts_of() RETURNS trigger LANGUAGE plpgsql AS $fn$
    DECLARE
        v_sign integer := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    BEGIN
        UPDATE mailboxes b SET message_count = b.message_count + v_sign * d.n,
                unseen_count = b.unseen_count + v_sign * d.u,
                deleted_count = b.deleted_count + v_sign * d.d,
                size_sum = b.size_sum + v_sign * d.total
            FROM (SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE flags & 1 = 0) AS u,
                         count(*) FILTER (WHERE flags & 8 <> 0) AS d, sum(size) AS total
                  FROM those GROUP BY mailbox_id) d
            WHERE b.id = d.mailbox_id;
        RETURN NULL;
    END
    $fn$;
    CREATE FUNCTION coi_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        UPDATE mailboxes b SET unseen_count = b.unseen_count + d.u,
                deleted_count = b.deleted_count + d.d
            FROM (SELECT n.mailbox_id,
                         sum((n.flags & 1 = 0)::int - (o.flags & 1 = 0)::int) AS u,
                         sum((n.flags & 8 <> 0)::int - (o.flags & 8 <> 0)::int) AS d
                  FROM new_rows n JOIN old_rows o ON o.mailbox_id = n.mailbox_id
                      AND o.uid = n.uid
                  WHERE (n.flags # o.flags) & 9 <> 0
                  GROUP BY n.mailbox_id) d
            WHERE b.id = d.mailbox_id;
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER messages_counts_added AFTER INSERT ON messages
        REFERENCING NEW TABLE AS those FOR EACH STATEMENT EXECUTE FUNCTION coi_counts_of();
    CREATE TRIGGER messages_counts_removed AFTER DELETE ON messages
        REFERENCING OLD TABLE AS those FOR EACH STATEMENT EXECUTE FUNCTION coi_counts_of();
    CREATE TRIGGER messages_counts_changed AFTER UPDATE ON messages
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION coi_counts_changed();
    """,
    # 11: the functions plan their statements once per connection (`force_generic_plan`):
    # with the default, PostgreSQL planned some of their statements anew at every call
    # (those on `= ANY (array)`: its estimate for a parameter's array favours a custom
    # plan), which took a fifth of a 3-message STORE's CPU in the database (docs/
    # scale-out.md, "Planned once"). Their statements look rows up by key, so one plan
    # fits every call. A new function needs the same setting.
    # And STORE under `fsync = optimized` (README: Durability): the same STOREs, committed
    # without waiting for their WAL flush (a function's SET clause restores only its own
    # setting at the function's exit, so `synchronous_commit` stays off until COMMIT).
    """
    CREATE FUNCTION coi_store_flags_lazy(
        p_mailbox bigint, p_counts integer[], p_uids bigint[], p_modes text[],
        p_bits integer[], p_keywords text[], p_unchangedsince bigint[], p_token text,
        p_writes bigint[]
    ) RETURNS TABLE (
        request integer, uid bigint, flags integer, keywords text, modseq bigint,
        old_flags integer, old_keywords text, failed boolean, owner bigint
    ) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        RETURN QUERY SELECT * FROM coi_store_flags_many(p_mailbox, p_counts, p_uids, p_modes,
            p_bits, p_keywords, p_unchangedsince, p_token, p_writes);
    END
    $fn$;
    ALTER FUNCTION coi_store_flags(bigint, bigint[], text, integer, text[], bigint, text, bigint)
        SET plan_cache_mode = force_generic_plan;
    ALTER FUNCTION coi_store_flags_many(bigint, integer[], bigint[], text[], integer[], text[],
        bigint[], text, bigint[]) SET plan_cache_mode = force_generic_plan;
    ALTER FUNCTION coi_notify_uids(text, text, bigint, bigint, bigint, bigint[], boolean)
        SET plan_cache_mode = force_generic_plan;
    ALTER FUNCTION coi_remove_messages(bigint, bigint[], bigint[])
        SET plan_cache_mode = force_generic_plan;
    ALTER FUNCTION coi_expunge(bigint, bigint[], text, bigint)
        SET plan_cache_mode = force_generic_plan;
    ALTER FUNCTION coi_copy(bigint, bigint[], bigint, boolean, text, bigint)
        SET plan_cache_mode = force_generic_plan;
    ALTER FUNCTION coi_take_recent(bigint, bigint) SET plan_cache_mode = force_generic_plan;
    ALTER FUNCTION coi_counts_of() SET plan_cache_mode = force_generic_plan;
    ALTER FUNCTION coi_counts_changed() SET plan_cache_mode = force_generic_plan;
    """,
    # 12: bodies of up to about 8 KB (most mail, and nearly every chat message) kept in the
    # row instead of TOAST: PostgreSQL moves a value out of line once its row passes 2 KB,
    # and reading one back then costs an index lookup and a read per 2 KB chunk. Reading
    # 1,000 bodies of 2-4 KB took 9.3-10.9 ms out of line, 5.3-8.6 ms in the row (docs/
    # scale-out.md, "Bodies in the row"). Bodies stored before stay where they are.
    """
    ALTER TABLE bodies SET (toast_tuple_target = 8160);
    """,
    # 13: STORE returns every row it found, the unchanged ones too (`failed` NULL: found
    # and left as it was), as they were under the mailbox's lock. A STORE reported rows
    # read after its write, from the row cache when they were there, and the cache may not
    # yet have heard of another process's expunge: a `-FLAGS (\Deleted)` of messages just
    # expunged elsewhere was answered with \Deleted still set (docs/scale-out.md). The
    # STOREs of migrations 5 and 11 return what this one does.
    # And its UPDATE finds the rows by the whole primary key (`uid = ANY`): joined with the
    # new flags alone, the planner read every row of the mailbox when most of a
    # database's messages are in one mailbox.
    """
    CREATE OR REPLACE FUNCTION coi_store_flags(
        p_mailbox bigint, p_uids bigint[], p_mode text, p_bits integer, p_keywords text[],
        p_unchangedsince bigint, p_token text, p_write bigint
    ) RETURNS TABLE (
        uid bigint, flags integer, keywords text, modseq bigint,
        old_flags integer, old_keywords text, failed boolean, owner bigint
    ) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
    #variable_conflict use_column
    DECLARE
        v_user bigint;
        v_modseq bigint;
        v_known text;
        v_uids bigint[] := '{}';
        v_bits integer[] := '{}';
        v_texts text[] := '{}';
        v_piece text := '';
        v_entry text;
        v_head text;
        r record;
    BEGIN
        SELECT b.user_id, b.highestmodseq + 1, b.keywords INTO v_user, v_modseq, v_known
            FROM mailboxes b WHERE b.id = p_mailbox FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such mailbox' USING ERRCODE = 'P0002';
        END IF;
        v_head := '[' || to_json(p_token)::text || ',' || p_write || ',';
        FOR r IN
            SELECT m.uid AS u, m.flags AS ob, m.keywords AS ok, m.modseq AS om,
                CASE p_mode WHEN 'set' THEN p_bits WHEN 'add' THEN m.flags | p_bits
                    ELSE m.flags & ~p_bits END AS nb,
                CASE WHEN p_mode = 'set' THEN array_to_string(p_keywords, ' ')
                    WHEN cardinality(p_keywords) = 0 THEN m.keywords
                    ELSE coalesce((SELECT string_agg(k, ' ' ORDER BY k COLLATE "C") FROM (
                        SELECT k FROM unnest(string_to_array(m.keywords, ' ')) k
                            WHERE p_mode = 'add' OR k <> ALL (p_keywords)
                        UNION
                        SELECT k FROM unnest(p_keywords) k WHERE p_mode = 'add') s), '')
                    END AS nk
            FROM messages m WHERE m.mailbox_id = p_mailbox AND m.uid = ANY (p_uids)
            ORDER BY m.uid
        LOOP
            IF p_unchangedsince IS NOT NULL AND r.om > p_unchangedsince THEN
                uid := r.u; flags := r.ob; keywords := r.ok; modseq := r.om;
                old_flags := r.ob; old_keywords := r.ok; failed := true; owner := v_user;
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF r.nb = r.ob AND r.nk = r.ok THEN
                uid := r.u; flags := r.ob; keywords := r.ok; modseq := r.om;
                old_flags := r.ob; old_keywords := r.ok; failed := NULL; owner := v_user;
                RETURN NEXT;
                CONTINUE;
            END IF;
            v_uids := v_uids || r.u;
            v_bits := v_bits || r.nb;
            v_texts := v_texts || r.nk;
            uid := r.u; flags := r.nb; keywords := r.nk; modseq := v_modseq;
            old_flags := r.ob; old_keywords := r.ok; failed := false; owner := v_user;
            RETURN NEXT;
            v_entry := json_build_array(r.u, r.nb, r.nk, v_modseq, r.ob, r.ok)::text;
            IF v_piece <> '' AND octet_length(v_piece) + octet_length(v_entry) > 7000 THEN
                PERFORM pg_notify('coi_events', v_head || 'false,["F",' || v_user || ','
                    || p_mailbox || ',[' || v_piece || ']]]');
                v_piece := '';
            END IF;
            v_piece := CASE WHEN v_piece = '' THEN v_entry ELSE v_piece || ',' || v_entry END;
        END LOOP;
        IF v_piece = '' THEN
            RETURN;  -- nothing changed: no write, no event
        END IF;
        IF p_mode <> 'remove' AND NOT string_to_array(v_known, ' ') @> p_keywords THEN
            SELECT coalesce(string_agg(k, ' ' ORDER BY k COLLATE "C"), '') INTO v_known FROM (
                SELECT unnest(string_to_array(v_known, ' ')) AS k
                UNION SELECT unnest(p_keywords)) s;
        END IF;
        UPDATE messages m SET flags = t.nb, keywords = t.nk, modseq = v_modseq
            FROM unnest(v_uids, v_bits, v_texts) AS t(u, nb, nk)
            WHERE m.mailbox_id = p_mailbox AND m.uid = ANY (v_uids) AND m.uid = t.u;
        UPDATE mailboxes SET highestmodseq = v_modseq, keywords = v_known WHERE id = p_mailbox;
        PERFORM pg_notify('coi_events', v_head || 'true,["F",' || v_user || ','
            || p_mailbox || ',[' || v_piece || ']]]');
    END
    $fn$;
    """,
    # 14: EXPUNGE finds its messages by an index, not by reading the whole mailbox: a
    # partial index of the \Deleted messages (few at any time) for EXPUNGE and CLOSE, the
    # primary key for UID EXPUNGE (one `OR` of both made the plan read every row: 1.95 ms
    # of PostgreSQL's CPU per one-message UID EXPUNGE in a mailbox of 20,000, docs/
    # scale-out.md). Written `= 8`, not `<> 0`: the planner takes an unknown `<>` to hold
    # for nearly every row, and would not use the index. The flags column is in a partial
    # index already (messages_unseen), so STOREs stay the updates they were.
    """
    CREATE INDEX messages_deleted ON messages (mailbox_id, uid) WHERE flags & 8 = 8;
    CREATE OR REPLACE FUNCTION coi_expunge(
        p_mailbox bigint, p_uids bigint[], p_token text, p_write bigint
    ) RETURNS TABLE (uid bigint, blob_id bigint, modseq bigint, owner bigint)
    LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
    #variable_conflict use_column
    DECLARE
        v_user bigint;
        v_modseq bigint;
        v_uids bigint[];
        v_blobs bigint[];
    BEGIN
        SELECT b.user_id INTO v_user FROM mailboxes b WHERE b.id = p_mailbox FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such mailbox' USING ERRCODE = 'P0002';
        END IF;
        IF p_uids IS NULL THEN
            SELECT array_agg(m.uid ORDER BY m.uid), array_agg(m.blob_id ORDER BY m.uid)
                INTO v_uids, v_blobs FROM messages m
                WHERE m.mailbox_id = p_mailbox AND m.flags & 8 = 8;
        ELSE
            SELECT array_agg(m.uid ORDER BY m.uid), array_agg(m.blob_id ORDER BY m.uid)
                INTO v_uids, v_blobs FROM messages m
                WHERE m.mailbox_id = p_mailbox AND m.uid = ANY (p_uids) AND m.flags & 8 = 8;
        END IF;
        IF v_uids IS NULL THEN
            RETURN;
        END IF;
        v_modseq := coi_remove_messages(p_mailbox, v_uids, v_blobs);
        PERFORM coi_notify_uids('[' || to_json(p_token)::text || ',' || p_write || ',', 'E',
            v_user, p_mailbox, v_modseq, v_uids, true);
        RETURN QUERY SELECT t.u, t.b, v_modseq, v_user FROM unnest(v_uids, v_blobs) AS t(u, b);
    END
    $fn$;
    """,
    # 15: the functions find messages by plain index scans, not bitmap scans. Their
    # generic plans for `uid = ANY (array)` took a bitmap scan of the primary key, and a
    # bitmap scan never marks the index entries of dead row versions as dead, so every
    # STORE (each leaves a new version of its rows and new entries in every index) made
    # the next ones read more, until a vacuum: PostgreSQL's CPU per STORE under a
    # STORE-only load was 0.64-0.83 ms before, 0.41-0.49 ms after (docs/scale-out.md,
    # "Index scans that clean up").
    # No function reads a GIN index (which only a bitmap scan can). A new function needs
    # the same setting.
    """
    DO $do$
    DECLARE
        f regprocedure;
    BEGIN
        FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'coi\\_%'
        LOOP
            EXECUTE format('ALTER FUNCTION %s SET enable_bitmapscan = off', f);
        END LOOP;
    END
    $do$;
    """,
    # 16: a shard closed to new users (`coi shard close`; coi.store.postgres.sharded): in a
    # shard directory made before, whose map (`shards`) coi.store.postgres.sharded makes
    # with the column since; nothing in any other database.
    """
    DO $do$
    BEGIN
        IF to_regclass('shards') IS NOT NULL THEN
            ALTER TABLE shards ADD COLUMN IF NOT EXISTS closed boolean NOT NULL DEFAULT false;
        END IF;
    END
    $do$;
    """,
)

# Any number 64-bit constant: the advisory lock that serializes migrations when several
# `coi serve` processes start on one fresh database at once.
_MIGRATION_LOCK = 0x636F69_6D6967


async def migrate(
    conn: asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record],
) -> None:
    """Brings the schema to the newest version, one committed step at a time; refuses a
    schema written by a newer coi (SchemaTooNew), as the SQLite store does."""
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"
            )
            row = await conn.fetchrow("SELECT version FROM schema_version")
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise SchemaTooNew(
                    f"the store was written by a newer coi (schema {version}, this one knows"
                    f" {len(MIGRATIONS)}): upgrade coi, or restore a backup made by this version"
                )
            if version == len(MIGRATIONS):
                if row is None:
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
                return
            if row is None:
                await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            await conn.execute(MIGRATIONS[version])
            await conn.execute("UPDATE schema_version SET version = $1", version + 1)
