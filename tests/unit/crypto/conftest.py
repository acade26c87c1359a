from __future__ import annotations

from pathlib import Path

import pytest

from coi.crypto import KeyPair, generate_key

DATA = Path(__file__).resolve().parents[2] / "data"
CRYPTO = DATA / "crypto"
DELTACHAT = DATA / "mail" / "deltachat"


@pytest.fixture(scope="session")
def alice() -> KeyPair:
    return generate_key("alice@example.org")


@pytest.fixture(scope="session")
def bob() -> KeyPair:
    return generate_key("bob@example.org")


@pytest.fixture(scope="session")
def carol() -> KeyPair:
    return generate_key("carol@example.org")
