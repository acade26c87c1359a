"""Store failures, each mapped to one IMAP response code by the server."""


class StoreError(Exception):
    """Base of every expected store failure (the server answers NO)."""


class MailboxExists(StoreError):
    pass


class NoSuchMailbox(StoreError):
    pass


class MailboxInUse(StoreError):
    """Deleting a mailbox that has inferior names while \\Noselect is not allowed, etc."""


class UserExists(StoreError):
    pass


class NoSuchUser(StoreError):
    pass


class QuotaExceeded(StoreError):
    pass


class MetadataTooMany(StoreError):
    """Setting the entries would exceed the per-user METADATA entry limit (RFC 5464 §4.3)."""
