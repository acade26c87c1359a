"""webpush package."""
