from __future__ import annotations

from coi.auth.passwords import VerifiedCache, hash_password, verify_password


def test_hash_and_verify() -> None:
    encoded = hash_password("s3cret")
    assert encoded.startswith("scrypt$14$8$1$")
    assert verify_password("s3cret", encoded)
    assert not verify_password("S3cret", encoded)
    assert not verify_password("s3cret", "garbage")
    assert hash_password("s3cret") != encoded  # salted


async def test_verified_cache_skips_scrypt_only_for_the_same_password_and_hash() -> None:
    cache = VerifiedCache(ttl=60)
    encoded = hash_password("s3cret")
    assert not cache.check(encoded, "s3cret", now=0)
    assert await cache.verify("s3cret", encoded)
    assert cache.check(encoded, "s3cret", now=0)
    assert not cache.check(encoded, "wrong", now=0)
    assert not await cache.verify("wrong", encoded)
    changed = hash_password("s3cret")  # a new password hash is never served from the cache
    assert not cache.check(changed, "s3cret", now=0)
    cache.remember(encoded, "s3cret", now=0)
    assert not cache.check(encoded, "s3cret", now=61)  # expired
