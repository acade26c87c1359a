"""imap server package."""
