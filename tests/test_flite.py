"""Flite voices in the built-in corpus (data_prep.flite); the synthesis tests need the system's
`flite` (Debian package flite) and skip, saying so, without it."""

from __future__ import annotations

import shutil
from collections import Counter

import librosa
import numpy as np
import pytest

from data_prep.flite import VOICE_PITCHES, FliteVoice, draw_flite_speakers, flite_settings, get_flite
from conftest import check_engine_joins_corpus
from kws_proto.config import DataConfig
from data_prep.builtin import ensure_dataset
from kws_proto.errors import ConfigError, DatasetError, KwsError

needs_flite = pytest.mark.skipif(shutil.which("flite") is None,
                                 reason="the `flite` executable is not installed (apt-get install flite)")


def test_flite_speakers_are_distinct_seeded_and_spread_over_the_voices():
    all_ = flite_settings()
    assert len(set(all_)) == len(all_) == sum(len(p) for p in VOICE_PITCHES.values()) * 5
    eight = draw_flite_speakers(8, seed=0)
    assert len(set(eight)) == 8
    assert Counter(v.voice for v in eight) == {v: 2 for v in VOICE_PITCHES}
    assert draw_flite_speakers(8, seed=0) == eight != draw_flite_speakers(8, seed=1)
    assert set(draw_flite_speakers(len(all_), seed=3)) == set(all_)
    with pytest.raises(ConfigError, match="66"):
        draw_flite_speakers(66, seed=0)
    with pytest.raises(ConfigError, match="'nobody'"):
        FliteVoice("nobody")


def test_missing_flite_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(KwsError, match="apt-get install flite"):
        get_flite()


@needs_flite
def test_flite_pitch_setting_moves_the_spoken_pitch():
    flite = get_flite()
    f0 = {}
    for hz in (100, 200):
        y = flite.synthesize("yesterday", FliteVoice("slt", hz, 1.0)).astype(np.float32) / 32768
        track, voiced, _ = librosa.pyin(y, fmin=60, fmax=400, sr=flite.sample_rate)
        f0[hz] = float(np.nanmedian(track[voiced]))
    assert 1.6 < f0[200] / f0[100] < 2.4, f0


@needs_flite
def test_flite_speakers_join_the_corpus_and_leave_the_espeak_clips_unchanged(tmp_path):
    info = check_engine_joins_corpus(tmp_path, "flite", flite_speakers=3)
    assert info["flite_speakers"] == 3


def test_a_corpus_built_with_other_flite_speakers_is_refused(tmp_path):
    """A config asking for Flite voices never silently reuses a corpus built without them."""
    data = DataConfig(dataset=str(tmp_path / "c"), synth_words=3, synth_speakers=2)
    ensure_dataset(data, progress=False)
    ensure_dataset(data, progress=False)  # same settings: reused
    with pytest.raises(DatasetError, match="flite_speakers"):
        ensure_dataset(DataConfig(dataset=data.dataset, synth_words=3, synth_speakers=2,
                                  synth_flite_speakers=2), progress=False)
    with pytest.raises(ConfigError, match="synth_flite_speakers"):
        DataConfig(synth_flite_speakers=-1)
