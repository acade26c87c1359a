from transcripts.helpers import alice

__all__ = ["alice"]
