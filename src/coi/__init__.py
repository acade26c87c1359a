"""coi: Chat Over IMAP server and client."""

__version__ = "0.1.0"
