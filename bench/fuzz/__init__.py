"""Coverage-guided fuzz targets (atheris/libFuzzer) for the code that reads untrusted input.

Each target module has ``check(data: bytes) -> None``, which drives the real server code on
``data`` and raises on a broken invariant; ``bench/fuzz/run TARGET`` fuzzes it, and
tests/unit/test_fuzz_corpus.py replays the kept corpus (tests/data/fuzz/TARGET/).
"""

TARGETS = ("imap", "smtp", "mime")
