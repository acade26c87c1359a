from tests.transcripts.helpers import alice

__all__ = ["alice"]
