"""Authentication: password hashing and login throttling."""
