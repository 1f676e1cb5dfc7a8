"""Festival voices in the built-in corpus (data_prep.festival); the synthesis tests need the
system's `festival` and the voice they use (Debian packages festival, festvox-kdlpc16k, ...) and
skip, saying so, without them."""

from __future__ import annotations

import functools
import json
import shutil
from collections import Counter

import librosa
import numpy as np
import pytest

from data_prep.festival import (ENGLISH, PITCH_FACTORS, STRETCHES, VOICES, FestivalVoice,
                                draw_festival_speakers, festival_settings, get_festival)
from data_prep.synth import SynthConfig, build_synth
from conftest import check_engine_joins_corpus
from kws_proto.config import DataConfig
from data_prep.builtin import ensure_dataset
from kws_proto.data.dataset import load_manifest
from kws_proto.errors import ConfigError, DatasetError, KwsError


@functools.cache
def _installed_voices() -> frozenset[str]:
    """The Festival voices on this machine (none without Festival), asked once per test process."""
    return frozenset(get_festival().installed_voices()) if shutil.which("festival") else frozenset()


def needs_voice(voice: str):
    return pytest.mark.skipif(voice not in _installed_voices(), reason=f"Festival with its {voice} voice is not installed "
                              f"(apt-get install festival {VOICES[voice].package})")


needs_festival = needs_voice("ked_diphone")


def test_festival_settings_are_distinct_seeded_and_spread_over_the_voices():
    all_ = festival_settings()
    with_pitch = sum(info.pitch for info in VOICES.values())
    assert len(set(all_)) == len(all_) == (with_pitch * len(PITCH_FACTORS) + len(VOICES) - with_pitch) * len(STRETCHES)
    assert all(s.pitch == 1.0 for s in all_ if not VOICES[s.voice].pitch)
    english = draw_festival_speakers(6, seed=0, voices=ENGLISH)
    assert Counter(v.voice for v in english) == {v: 3 for v in ENGLISH}
    assert draw_festival_speakers(6, seed=0, voices=ENGLISH) == english != draw_festival_speakers(6, 1, ENGLISH)
    assert set(draw_festival_speakers(len(all_), seed=3)) == set(all_)
    n_english = len(festival_settings(ENGLISH))
    with pytest.raises(ConfigError, match=str(n_english)):
        draw_festival_speakers(n_english + 1, seed=0, voices=ENGLISH)
    with pytest.raises(ConfigError, match="'nobody'"):
        draw_festival_speakers(1, seed=0, voices=("ked_diphone", "nobody"))
    with pytest.raises(ConfigError, match="its own pitch"):
        FestivalVoice("cmu_us_slt_arctic_hts", pitch=1.2)
    slower = FestivalVoice("ked_diphone", 1.0, 1.25)
    assert slower.faster(1.5).stretch < slower.stretch / 1.5
    assert FestivalVoice("ked_diphone", 1.0, 0.4).faster(1.5) is None


def test_missing_festival_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(KwsError, match="apt-get install festival festvox-kdlpc16k"):
        get_festival(("ked_diphone",))


@needs_festival
def test_festival_pitch_and_stretch_move_the_spoken_pitch_and_length():
    festival = get_festival(("ked_diphone",))
    f0, length = {}, {}
    for pitch, stretch in ((1.0, 1.0), (1.3, 1.0), (1.0, 1.25)):
        y = festival.synthesize("yesterday", FestivalVoice("ked_diphone", pitch, stretch)).astype(np.float32) / 32768
        track, voiced, _ = librosa.pyin(y, fmin=60, fmax=400, sr=festival.sample_rate)
        f0[pitch, stretch] = float(np.nanmedian(track[voiced]))
        length[pitch, stretch] = len(np.trim_zeros(np.round(y, 3)))
    assert 1.15 < f0[1.3, 1.0] / f0[1.0, 1.0] < 1.45, f0
    assert 1.1 < length[1.0, 1.25] / length[1.0, 1.0] < 1.4, length


@pytest.mark.parametrize("voice", [pytest.param("ked_diphone", marks=needs_voice("ked_diphone")),
                                   # its random intonation must be off, else a word depends on the one before
                                   pytest.param("czech_dita", marks=needs_voice("czech_dita"))])
def test_one_festival_process_says_each_word_as_a_process_of_its_own_would(voice):
    festival, voice = get_festival((voice,)), FestivalVoice(voice, 0.85, 0.9)
    words = ["seven", "o'clock", "window", "avalanche", "butterfly", "zipper"]
    batch = festival.speak_all(words, voice)
    assert len({a.tobytes() for a in batch}) == len(words)  # different words, not one said again
    for word, pcm in zip(words, batch):
        np.testing.assert_array_equal(pcm, festival.synthesize(word, voice))


@needs_voice("hy_fi_mv_diphone")
def test_a_word_festival_cannot_say_is_dropped_named_and_counted(tmp_path):
    """Festival's Finnish voices stop with an error on "buzz"; the words after it are still said."""
    festival, voice = get_festival(("hy_fi_mv_diphone",)), FestivalVoice("hy_fi_mv_diphone")
    said = festival.speak_all(["zoo", "buzz", "apple"], voice)
    assert isinstance(said[0], np.ndarray) and isinstance(said[2], np.ndarray)
    assert "'buzz'" in said[1] and "hy_fi_mv_diphone" in said[1]
    with pytest.raises(KwsError, match="'buzz'"):
        festival.synthesize("buzz", voice)
    cfg = SynthConfig(n_words=None, n_speakers=1, words=("apple", "buzz", "zoo"), festival_speakers=1,
                      festival_voices=("hy_fi_mv_diphone",), noise_seconds=1.0, workers=1)
    build_synth(tmp_path / "c", cfg, progress=False)
    info = json.loads((tmp_path / "c" / "report.json").read_text())["synth"]
    assert [(d["word"], "buzz" in d["reason"]) for d in info["dropped"]] == [("buzz", True)]
    assert info["clips_written"] == 3 + 2 == len(load_manifest(tmp_path / "c"))


@needs_festival
def test_festival_speakers_join_the_corpus_and_leave_the_other_clips_unchanged(tmp_path):
    info = check_engine_joins_corpus(tmp_path, "festival", festival_speakers=3,
                                     festival_voices=("ked_diphone",))
    assert info["festival_speakers"] == 3 and info["festival_voices"] == ["ked_diphone"]


def test_a_corpus_built_with_other_festival_speakers_is_refused(tmp_path):
    """A config asking for Festival voices never silently reuses a corpus built without them."""
    data = DataConfig(dataset=str(tmp_path / "c"), synth_words=3, synth_speakers=2)
    ensure_dataset(data, progress=False)
    with pytest.raises(DatasetError, match="festival_speakers"):
        ensure_dataset(DataConfig(dataset=data.dataset, synth_words=3, synth_speakers=2,
                                  synth_festival_speakers=2), progress=False)
    with pytest.raises(ConfigError, match="synth_festival_speakers"):
        DataConfig(synth_festival_speakers=-1)
