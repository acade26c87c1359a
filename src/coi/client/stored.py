"""Messages for our own devices only, kept in ``<root>/Contacts``: contact, profile and group
storage messages (coi-client-spec). Written encrypted to our key; a replaced one removed."""

from __future__ import annotations

from collections.abc import Sequence

from coi.client.store import Account
from coi.crypto import KeyPair, pgpmime
from coi.imap.client import ImapClient


def seal_to_self(
    account: Account, raw: bytes, message_id: str, date: str, own: KeyPair,
    keep_outside: Sequence[tuple[str, str]],
) -> bytes:  # fmt: skip
    """A message only for our own devices (contact, profile and group storage messages,
    coi-client-spec: Encrypting Contacts): encrypted to our key, the headers a server acts
    on (``COI-From-Hash``, ``COI-Blocked``, ``Chat-Content``...) kept outside."""
    return pgpmime.encrypt_message(
        raw,
        outer_from=account.address,
        message_id=f"<{message_id}>",
        date=date,
        recipients=[own.public],
        signer=own,
        autocrypt=None,
        keep_outside=keep_outside,
    )


async def remove_stored(
    imap: ImapClient, folder: str, uids: str, uidvalidity: int | None = None
) -> None:
    """Removes our replaced storage messages from ``folder`` (not when its UIDVALIDITY is no
    longer ``uidvalidity``): UID EXPUNGE (UIDPLUS), never a plain EXPUNGE that would also
    take what another client marked \\Deleted there."""
    selected = await imap.select(folder)
    if uidvalidity is not None and selected.uidvalidity != uidvalidity:
        return
    await imap.uid_store(uids, "+FLAGS", ["\\Deleted"])
    if imap.has("UIDPLUS"):
        await imap.uid_expunge(uids)
