from __future__ import annotations

from pathlib import Path

import pytest

from coi.chat.model import ChatMessage
from coi.chat.parse import parse

DATA = Path(__file__).resolve().parents[2] / "data" / "chat"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parsed(name: str) -> ChatMessage:
    return parse(load(name))


@pytest.fixture
def data_dir() -> Path:
    return DATA
