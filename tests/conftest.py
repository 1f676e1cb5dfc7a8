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


TINY_SYNTH = {"synth_words": 20, "synth_speakers": 10, "synth_seed": 0}


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """A tiny built-in corpus (20 words x 10 eSpeak NG voices, split 16/2/2), built once."""
    from data_prep.synth import SynthConfig, build_synth

    root = tmp_path_factory.mktemp("synth") / "tiny"
    build_synth(root, SynthConfig(n_words=TINY_SYNTH["synth_words"],
                                  n_speakers=TINY_SYNTH["synth_speakers"],
                                  seed=TINY_SYNTH["synth_seed"], noise_seconds=5), progress=False)
    return root


@pytest.fixture
def smoke_config(synth_dataset):
    """``experiments/configs/smoke.yaml`` pointed at the tiny corpus."""
    from kws_proto.config import load_config

    return load_config(REPO / "experiments" / "configs" / "smoke.yaml",
                       overrides={"data": {"dataset": str(synth_dataset), **TINY_SYNTH}})
