"""Shared fixtures: the real speech of ../shared/data, skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"real speech not available: {path} is absent (set KWS_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """``../shared/data/fsdd``: 3,000 FSDD digit clips (8 kHz WAV), or skip."""
    return _shared("fsdd")


@pytest.fixture(scope="session")
def picovoice_dir() -> Path:
    """``../shared/data/picovoice``: six wake words (16 kHz FLAC, 14 corrupt), or skip."""
    return _shared("picovoice")
