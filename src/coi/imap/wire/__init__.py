"""imap wire package."""
