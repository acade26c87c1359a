"""store sqlite package."""
