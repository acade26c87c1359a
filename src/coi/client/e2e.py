"""End-to-end encryption for the client: Autocrypt Level 1 on ``coi.crypto``.

# coi-client-spec: Message Encryption ("SHOULD support Autocrypt")
Each account has one key pair, made when the account is added and kept in the
profile's secrets (mode 0600). Peers' keys come from the ``Autocrypt`` header of their
mail (only when its ``addr`` is the From address, Autocrypt Level 1 §2.3), from
``Autocrypt-Gossip`` inside validly signed mail, or from a vCard. A message goes out
encrypted (PGP/MIME, protected headers, signed) when every recipient's key is known, in
clear with our ``Autocrypt`` header otherwise, and never in clear when the account is set
to encrypt only.
"""

from __future__ import annotations

import os
import re
from email.parser import BytesHeaderParser
from email.utils import parseaddr, parsedate_to_datetime

from coi.client.apply import Opened
from coi.client.profile import Profile, ProfileError
from coi.client.store import Account, LocalStore
from coi.crypto import (
    CryptoError,
    KeyPair,
    generate_key,
    pgpmime,
    public_key_info,
)
from coi.crypto import autocrypt as ac

_HEADER_PARSER = BytesHeaderParser()


class MissingKeys(Exception):
    """Encrypt-only account, and some recipients' keys are unknown."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        super().__init__(
            "no key known for " + ", ".join(addresses) + ": this account sends only encrypted"
            " mail; import their vCard ('coi contact import FILE.vcf') or wait for their mail"
        )


class Keyring:
    """One account's own key pair and what it knows of its peers' keys."""

    def __init__(self, profile: Profile, store: LocalStore, account: Account) -> None:
        self.profile = profile
        self.store = store
        self.account = account
        self.me = account.address.lower()
        self._own: KeyPair | None = None

    # -- own key --------------------------------------------------------------------

    def _paths(self) -> tuple[str, str]:
        base = str(self.profile.secrets_dir / re.sub(r"[^A-Za-z0-9@._+-]", "_", self.me))
        return base + ".sec", base + ".pub"

    def ensure_own(self) -> KeyPair:
        """The account's key pair, made on first use (an Ed25519/Cv25519 key as Delta
        Chat makes)."""
        try:
            return self.own()
        except ProfileError:
            pass
        self.save_own(generate_key(self.account.address))
        return self.own()

    def own(self) -> KeyPair:
        if self._own is None:
            sec, pub = self._paths()
            try:
                with open(sec, "rb") as f:
                    secret = f.read()
                with open(pub, "rb") as f:
                    public = f.read()
            except FileNotFoundError:
                raise ProfileError(
                    f"no key for {self.account.address}: add the account again or"
                    " 'coi key import'"
                ) from None
            self._own = KeyPair(secret, public, public_key_info(public).fingerprint)
        return self._own

    def save_own(self, pair: KeyPair) -> None:
        self.profile.ensure()
        for path, data in zip(self._paths(), (pair.secret, pair.public), strict=True):
            tmp = path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        self._own = pair

    def remove_own(self) -> None:
        for path in self._paths():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- peers ------------------------------------------------------------------------

    def peer_key(self, addr: str) -> bytes | None:
        """The key to encrypt to: the peer's own Autocrypt key, else a gossiped one."""
        row = self.store.db.execute(
            "SELECT public, gossip_key FROM peer WHERE account_id=? AND addr=?",
            (self.account.id, addr),
        ).fetchone()
        if row is None:
            return None
        key = bytes(row[0]) or bytes(row[1])
        return key or None

    def verifiers(self) -> list[bytes]:
        rows = self.store.db.execute(
            "SELECT public, gossip_key FROM peer WHERE account_id=?", (self.account.id,)
        ).fetchall()
        keys = [bytes(k) for row in rows for k in row if k]
        return [self.own().public, *keys]

    def fingerprint_of(self, addr: str) -> set[str]:
        fingerprints: set[str] = set()
        if addr.lower() == self.me:
            fingerprints.add(self.own().fingerprint)
        row = self.store.db.execute(
            "SELECT public, gossip_key FROM peer WHERE account_id=? AND addr=?",
            (self.account.id, addr),
        ).fetchone()
        for key in row or ():
            if key:
                try:
                    fingerprints.add(public_key_info(bytes(key)).fingerprint)
                except CryptoError:
                    pass
        return fingerprints

    def observe(self, addr: str, header: ac.AutocryptHeader | None, date: float) -> None:
        """Autocrypt Level 1 §2.3: a newer message's header (or its absence) updates the
        peer's state; an older one does not."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT last_seen, autocrypt_timestamp FROM peer WHERE account_id=? AND addr=?",
                (self.account.id, addr),
            ).fetchone()
            if row is not None and date <= float(row[0]):
                return
            if header is None:
                db.execute(
                    "INSERT INTO peer (account_id, addr, last_seen) VALUES (?, ?, ?)"
                    " ON CONFLICT DO UPDATE SET last_seen=excluded.last_seen",
                    (self.account.id, addr, date),
                )
                return
            db.execute(
                "INSERT INTO peer (account_id, addr, last_seen, autocrypt_timestamp, public,"
                " prefer_encrypt) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                " last_seen=excluded.last_seen, autocrypt_timestamp=excluded.autocrypt_timestamp,"
                " public=excluded.public, prefer_encrypt=excluded.prefer_encrypt",
                (self.account.id, addr, date, date, header.keydata, int(header.prefer_encrypt)),
            )

    def observe_gossip(self, header: ac.AutocryptHeader, date: float) -> None:
        """Autocrypt Level 1 §2.4 (gossip): only from validly signed mail, never for us."""
        if header.addr.lower() == self.me:
            return
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO peer (account_id, addr, gossip_timestamp, gossip_key)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                " gossip_timestamp=excluded.gossip_timestamp, gossip_key=excluded.gossip_key"
                " WHERE excluded.gossip_timestamp > gossip_timestamp",
                (self.account.id, header.addr.lower(), date, header.keydata),
            )

    def import_key(self, addr: str, key: bytes) -> str:
        """A key from a vCard: checked, then used as the peer's key. Returns its fingerprint."""
        info = public_key_info(key)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO peer (account_id, addr, public, prefer_encrypt) VALUES (?, ?, ?, 1)"
                " ON CONFLICT DO UPDATE SET public=excluded.public, prefer_encrypt=1",
                (self.account.id, addr.lower(), key),
            )
        return info.fingerprint

    # -- messages -----------------------------------------------------------------------

    def autocrypt_value(self) -> str:
        return ac.format_header(self.account.address, self.own().public, prefer_encrypt=True)

    def seal(
        self, raw: bytes, recipients: list[str], message_id: str, date: str
    ) -> tuple[bytes, bool]:
        """``raw`` as it goes out, and whether encrypted: to everyone when we can, else in
        clear with our Autocrypt header (refused for an encrypt-only account)."""
        keys: list[bytes] = []
        missing: list[str] = []
        for addr in recipients:
            key = None if addr.lower() == self.me else self.peer_key(addr.lower())
            if key is None and addr.lower() != self.me:
                missing.append(addr)
            elif key is not None:
                keys.append(key)
        if missing:
            if self.account.settings.encrypt_only:
                raise MissingKeys(missing)
            return _add_header(raw, "Autocrypt", self.autocrypt_value()), False
        own = self.own()
        others = [a for a in recipients if a.lower() != self.me]
        if len(others) > 1:  # Autocrypt Level 1 §2.7: every member learns the others' keys
            for addr in sorted(others, reverse=True):
                key = self.peer_key(addr.lower())
                if key is not None:
                    raw = _add_header(raw, "Autocrypt-Gossip", ac.format_gossip_header(addr, key))
        sealed = pgpmime.encrypt_message(
            raw,
            outer_from=self.account.address,
            message_id=message_id,
            date=date,
            recipients=[*keys, own.public],
            signer=own,
            autocrypt=self.autocrypt_value(),
            keep_outside=(("Chat-Version", "1.0"),),  # servers classify chat mail by it
        )
        return sealed, True

    def open(self, raw: bytes) -> Opened:
        """Decrypts and verifies; learns the sender's Autocrypt header and gossip."""
        headers = _HEADER_PARSER.parsebytes(raw)
        sender = parseaddr(str(headers.get("From", "")))[1].lower()
        date = _date_of(headers.get("Date"))
        try:
            decrypted = pgpmime.decrypt_message(raw, [self.own()], self.verifiers())
        except CryptoError:
            return Opened(raw, encrypted=True)  # shown as a placeholder: we lack the key
        if decrypted is None:
            outer = _autocrypt_of(headers.get_all("Autocrypt") or [], sender)
            if sender and sender != self.me:
                self.observe(sender, outer, date)
            return Opened(raw, encrypted=False, verified=False)
        announced = decrypted.autocrypt if _matches(decrypted.autocrypt, sender) else None
        if decrypted.signer is None and announced is not None:
            # first contact: the signature is checked against the key the message announces
            # (Autocrypt is opportunistic; the header inside is covered by the encryption)
            again = pgpmime.decrypt_message(raw, [self.own()], [announced.keydata])
            if again is not None:
                decrypted = again
        if sender and sender != self.me:
            self.observe(sender, announced, date)
        verified = decrypted.signer is not None and decrypted.signer in self.fingerprint_of(
            sender
        )
        if verified:  # gossip only from validly signed mail (Autocrypt Level 1 §2.4)
            for gossip in decrypted.gossip:
                self.observe_gossip(gossip, date)
        return Opened(decrypted.inner, encrypted=True, verified=verified)


def _matches(header: ac.AutocryptHeader | None, sender: str) -> bool:
    return header is not None and header.addr.lower() == sender


def _autocrypt_of(values: list[str], sender: str) -> ac.AutocryptHeader | None:
    """Autocrypt Level 1 §2.3: exactly one valid header whose addr is the From address."""
    found = [h for h in (ac.parse_header(str(v)) for v in values) if _matches(h, sender)]
    return found[0] if len(found) == 1 else None


def _date_of(value: object) -> float:
    import time

    now = time.time()
    try:
        when = parsedate_to_datetime(str(value)).timestamp() if value else now
    except (TypeError, ValueError, IndexError):
        when = now
    return min(when, now)  # §2.3: a date in the future counts as now


def _add_header(raw: bytes, name: str, value: str) -> bytes:
    """Prepends a header field, folded at its spaces (RFC 5322 §2.2.3)."""
    words = value.split(" ")
    lines, line = [], f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > 76 and line.strip():
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii") + raw

