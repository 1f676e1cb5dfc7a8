"""A word said between two others (:mod:`kws_proto.audio.neighbours`): the word itself is left
as it was, its neighbours are its own speaker's words, placed in its silence, and one seed
fixes them."""

from __future__ import annotations

import numpy as np
import pytest

from kws_proto.audio.neighbours import HOP, MAX_GAP, between, speech_extent, with_neighbours

N = 16000


def _burst(start: int, end: int, amplitude: float, hz: float) -> np.ndarray:
    """A 1 s clip: silence with a tone from ``start`` to ``end``."""
    wave = np.zeros(N, np.float32)
    t = np.arange(end - start) / N
    wave[start:end] = amplitude * np.sin(2 * np.pi * hz * t)
    return wave


def test_the_extent_of_speech_is_where_the_clip_is_loud():
    start, end = speech_extent(_burst(5000, 9000, 0.3, 440))
    assert abs(start - 5000) <= 160 and abs(end - 9000) <= 160  # within one 10 ms frame
    assert speech_extent(np.zeros(N, np.float32)) == (0, N)  # silence: the whole clip


def test_neighbours_are_the_speakers_own_words_in_the_words_silence():
    # two speakers, told apart by level: A's words at 0.5, B's at 0.1
    waves = np.stack([_burst(6000, 10000, 0.5, 300 + 50 * i) for i in range(4)]
                     + [_burst(5000, 11000, 0.1, 500 + 50 * i) for i in range(4)])
    speakers = ["A"] * 4 + ["B"] * 4
    out = with_neighbours(waves, speakers, seed=0)
    assert out.shape == waves.shape and out.dtype == np.float32
    for i, wave in enumerate(waves):
        start, end = speech_extent(wave)
        np.testing.assert_array_equal(out[i, start:end], wave[start:end])  # the word untouched
        around = np.concatenate([out[i, :start], out[i, end:]])
        level = 0.5 if speakers[i] == "A" else 0.1
        assert np.abs(around).max() == pytest.approx(level, rel=0.05)  # its own voice's words
        # the word before ends at most MAX_GAP (plus the envelope's half frame) before it starts
        assert start - np.flatnonzero(out[i, :start])[-1] <= MAX_GAP + HOP
    np.testing.assert_array_equal(out, with_neighbours(waves, speakers, seed=0))
    assert not np.array_equal(out, with_neighbours(waves, speakers, seed=1))


def test_a_clip_with_no_silence_gets_no_neighbours_and_bad_shapes_are_named():
    loud = np.full((2, N), 0.2, np.float32)
    np.testing.assert_array_equal(with_neighbours(loud, ["a", "a"]), loud)
    with pytest.raises(ValueError, match="one speaker each"):
        with_neighbours(loud, ["a"])


def test_between_places_other_words_at_the_clips_level_around_its_speech():
    """Enrolment's context views: the word untouched, the neighbours' speech scaled to its
    level, ending / starting within MAX_GAP of it; seeded."""
    word = _burst(6000, 9000, 0.4, 440)
    before, after = _burst(2000, 12000, 0.05, 300), _burst(1000, 5000, 0.8, 700)
    out = between(word, before, after, np.random.default_rng(0))
    start, end = speech_extent(word)
    assert out.shape == word.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[start:end], word[start:end])
    for side in (out[:start], out[end:]):
        assert np.abs(side).max() == pytest.approx(0.4, rel=0.05)  # at the word's level
    assert start - np.flatnonzero(out[:start])[-1] <= MAX_GAP + HOP
    assert np.flatnonzero(out[end:])[0] <= MAX_GAP + HOP
    np.testing.assert_array_equal(out, between(word, before, after, np.random.default_rng(0)))
    np.testing.assert_array_equal(word, _burst(6000, 9000, 0.4, 440))  # its input unchanged

