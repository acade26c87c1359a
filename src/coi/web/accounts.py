"""Who may log in to ``coi web`` and which client profile each person gets.

Two set-ups, one code path (docs/web.md): a person serves their own profile
(``PersonalAccounts``: the accounts ``coi account add`` made, with the passwords stored
in it), or an operator serves many people beside a mail server (``HostedAccounts``:
anyone whose mail address and password the IMAP server accepts gets a profile of their
own, set up as ``coi account add`` would).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from coi.client.client import Client, ClientError
from coi.client.profile import AccountSettings, ProfileError
from coi.imap.client import AuthenticationFailed, ImapError


class LoginFailed(Exception):
    """Wrong address or password; the message is safe to show."""


class LoginUnavailable(Exception):
    """The mail server could not be asked; the message says what happened."""


class Accounts(Protocol):
    async def login(self, address: str, password: str) -> Path:
        """Checks the password; returns the profile directory of this person."""

    def profile_dir(self, address: str) -> Path:
        """The profile of someone who logged in before."""


class PersonalAccounts:
    """One existing profile; its accounts log in with the password stored for them."""

    def __init__(self, profile_dir: Path) -> None:
        self.root = profile_dir

    async def login(self, address: str, password: str) -> Path:
        client = Client(self.root)
        try:
            account = client.store.account_by_address(address)
            stored = client.profile.load_password(address) if account else None
        except ProfileError:
            stored = None
        finally:
            client.close()
        if stored is None or not hmac.compare_digest(stored.encode(), password.encode()):
            raise LoginFailed("wrong address or password")
        return self.root

    def profile_dir(self, address: str) -> Path:
        return self.root


class HostedAccounts:
    """A profile per person under ``root``; the IMAP server checks every password.

    ``template`` holds the servers and security every account uses; the address is
    filled in at the first login, which also sets the account up (folders, keys).
    """

    def __init__(self, root: Path, template: AccountSettings) -> None:
        self.root = root
        self.template = template

    def profile_dir(self, address: str) -> Path:
        digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]
        return self.root / "users" / digest

    async def login(self, address: str, password: str) -> Path:
        address = address.strip().lower()
        if "@" not in address or len(address) > 254 or any(c.isspace() for c in address):
            raise LoginFailed("wrong address or password")
        root = self.profile_dir(address)
        client = Client(root)
        try:
            account = client.store.account_by_address(address)
            if account is None:
                settings = replace(self.template, address=address)
                await client.add_account(settings, password)
            else:  # the server checks the password; a changed one is kept
                sync = client.account_sync(account)
                try:
                    await sync.connect(password)
                finally:
                    await sync.close()
                client.profile.save_password(address, password)
        except AuthenticationFailed:
            raise LoginFailed("wrong address or password") from None
        except (ImapError, OSError) as exc:
            raise LoginUnavailable(f"cannot reach the mail server: {exc}") from None
        except ClientError as exc:
            if _refused(exc):
                raise LoginFailed("wrong address or password") from None
            raise LoginUnavailable(str(exc)) from None
        finally:
            client.close()
        return root


def _refused(exc: ClientError) -> bool:
    cause = exc.__context__
    while cause is not None:
        if isinstance(cause, AuthenticationFailed):
            return True
        cause = cause.__context__
    return False
