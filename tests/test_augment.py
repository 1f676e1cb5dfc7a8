"""Waveform augmentation: seeding, noise volume bounds, zero-filled time shift, noise loading."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from kws_proto.audio.augment import (
    AugmentConfig,
    augment,
    augment_function,
    load_noise,
    noise_segments,
    reverberate,
    silence,
    spec_mask,
    time_shift,
)
from kws_proto.errors import ConfigError
from kws_proto.audio.features import FeatureConfig, dct_matrix

SR = 16000
N = 4000  # 0.25 s clips keep the tests fast; the shift bound is in samples anyway


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    """[64, N] tones of different pitch and level (non-zero almost everywhere)."""
    t = np.arange(N) / SR
    f = np.linspace(200, 3000, 64)[:, None]
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.05).astype(np.float32)


@pytest.fixture(scope="module")
def white() -> np.ndarray:
    """3 s of unit-variance white noise, the stand-in for a background recording."""
    return np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32)


def run(waves, noise, seed, **cfg):
    return augment(tf.constant(waves), None if noise is None else tf.constant(noise),
                   tf.constant(seed, tf.int64), AugmentConfig(**cfg), sr=SR).numpy()


def test_same_seed_same_output_different_seed_differs(clips, white):
    a = run(clips, white, [1, 2])
    assert np.array_equal(a, run(clips, white, [1, 2]))
    assert not np.allclose(a, run(clips, white, [1, 3]))
    assert not np.allclose(a, run(clips, white, [2, 2]))
    graph = tf.function(lambda w, n, s: augment(w, n, s, AugmentConfig(), sr=SR))
    g = graph(tf.constant(clips), tf.constant(white), tf.constant([1, 2], tf.int64)).numpy()
    # the same draws in a graph; its ops (grappler's, oneDNN's) may round otherwise than eager's
    np.testing.assert_allclose(g, a, rtol=0, atol=1e-6)


def test_xla_compiled_augment_equals_eager(clips, white):
    """The pipeline runs the XLA-compiled function; the tests above check the eager one."""
    cfg = AugmentConfig(noise_prob=0.7)
    fn = augment_function(cfg, SR)
    assert augment_function(cfg, SR) is fn  # compiled once per config
    seed = tf.constant([4, 4], tf.int64)
    eager = augment(tf.constant(clips), tf.constant(white), seed, cfg, sr=SR).numpy()
    xla = fn(tf.constant(clips), tf.constant(white), seed).numpy()
    np.testing.assert_allclose(xla, eager, atol=1e-6)


@pytest.mark.parametrize("volume", [0.1, 0.03])
def test_added_noise_energy_within_volume_bound(clips, white, volume):
    out = run(clips, white, [5, 5], time_shift_ms=0.0, noise_volume=volume)
    added_rms = np.sqrt(np.mean((out - clips) ** 2, axis=1))  # white noise has rms 1.0
    assert added_rms.max() <= volume * 1.05
    assert added_rms.max() > 0.8 * volume  # volumes spread over U(0, volume) ...
    assert added_rms.min() < 0.2 * volume  # ... not a constant gain
    assert np.all(np.abs(out) <= 1.0)


def test_noise_probability(clips, white):
    out = run(np.tile(clips, (4, 1)), white, [0, 9], time_shift_ms=0.0, noise_prob=0.5)
    clean = np.all(out == np.tile(clips, (4, 1)), axis=1)
    assert 0.3 < clean.mean() < 0.7
    always = run(clips, white, [0, 9], time_shift_ms=0.0, noise_prob=1.0)
    assert not np.any(np.all(always == clips, axis=1))


def test_no_noise_means_shift_only(clips, white):
    a = run(clips, None, [3, 3])
    b = run(clips, white, [3, 3], noise_volume=0.0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(run(clips, white, [3, 3], noise_volume=0.0, time_shift_ms=0.0),
                                  clips)


def test_noise_segments_are_contiguous_stretches():
    noise = tf.range(20000, dtype=tf.float32)  # every sample value is its own index
    seg = noise_segments(noise, 50, N, tf.constant([4, 2], tf.int64)).numpy()
    assert seg.shape == (50, N)
    np.testing.assert_array_equal(seg - seg[:, :1], np.broadcast_to(np.arange(N), seg.shape))
    starts = seg[:, 0]
    assert starts.min() >= 0 and starts.max() <= 20000 - N and len(np.unique(starts)) > 40


def test_time_shift_moves_by_at_most_max_and_zero_fills(clips):
    max_shift = int(0.1 * SR)  # 100 ms
    rng = np.random.default_rng(1)
    waves = rng.uniform(0.1, 1.0, size=(64, N)) * rng.choice([-1, 1], size=(64, N))
    waves = waves.astype(np.float32)
    out = time_shift(tf.constant(waves), max_shift, tf.constant([7, 7], tf.int64)).numpy()
    shifts = []
    for w, o in zip(waves, out):
        zeros = np.flatnonzero(o == 0)  # the input has no zeros: every zero is fill
        s = len(zeros)
        assert s <= max_shift
        if s and zeros[0] == 0:  # moved right: the start is filled
            np.testing.assert_array_equal(zeros, np.arange(s))
            np.testing.assert_array_equal(o[s:], w[: N - s])
            shifts.append(s)
        else:  # moved left (or not at all): the end is filled
            np.testing.assert_array_equal(zeros, np.arange(N - s, N))
            np.testing.assert_array_equal(o[: N - s], w[s:])
            shifts.append(-s)
    shifts = np.asarray(shifts)
    assert shifts.min() < -max_shift // 2 and shifts.max() > max_shift // 2


def test_time_shift_config_in_ms(clips):
    out = run(np.ones((32, N), np.float32), None, [0, 1], time_shift_ms=10.0)
    assert (np.sum(out == 0, axis=1) <= 160).all() and (out == 0).any()


def test_silence_clips_volume_bound(white):
    s = silence(tf.constant(white), 100, N, tf.constant([1, 1], tf.int64), 0.1).numpy()
    assert s.shape == (100, N)
    rms = np.sqrt(np.mean(s**2, axis=1))
    assert rms.max() <= 0.105 and rms.max() > 0.08 and rms.min() < 0.02


def test_noise_shorter_than_clip_is_an_error(clips):
    with pytest.raises(ConfigError, match="shorter than a clip"):
        run(clips, np.ones(N - 1, np.float32), [0, 0])


@pytest.mark.parametrize(
    "field,value", [("noise_prob", 1.5), ("noise_volume", -0.1), ("silence_volume", 2.0),
                    ("time_shift_ms", -1.0), ("reverb_prob", 1.5), ("reverb_rt60", 0.05),
                    ("freq_masks", -1), ("time_mask_frames", 2.5), ("time_masks", True)]
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"augment\.{field}={value}"):
        AugmentConfig(**{field: value})


def test_config_round_trip():
    c = AugmentConfig(enabled=False, noise_volume=0.05)
    assert AugmentConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['augment\.volume'\]"):
        AugmentConfig.from_dict({"volume": 0.1})


def test_load_noise_joins_and_resamples(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "a.wav", rng.uniform(-0.5, 0.5, 16000).astype(np.float32), 16000)
    sf.write(tmp_path / "b.wav", rng.uniform(-0.5, 0.5, 4000).astype(np.float32), 8000)
    y = load_noise([tmp_path / "a.wav", tmp_path / "b.wav"], sr=SR)
    assert y.dtype == np.float32 and y.shape == (16000 + 8000,)
    assert load_noise([]).shape == (0,)


def test_reverberation_spreads_an_impulse_into_a_decaying_tail():
    """An impulse comes out as the room response: direct path first, energy decaying with RT60."""
    waves = np.zeros((16, N), np.float32)
    waves[:, 100] = 1.0
    out = reverberate(tf.constant(waves), 0.2, 1.0, tf.constant([1, 2], tf.int64), SR).numpy()
    assert np.all(out[:, :100] == pytest.approx(0, abs=1e-5))  # causal
    rms_in = np.sqrt(np.mean(waves**2, axis=1))
    np.testing.assert_allclose(np.sqrt(np.mean(out**2, axis=1)), rms_in, rtol=1e-3)  # level kept
    early = np.sum(out[:, 101:101 + 800] ** 2, axis=1)  # first 50 ms of tail
    late = np.sum(out[:, 101 + 1600:101 + 2400] ** 2, axis=1)  # 100-150 ms
    assert np.all(late < early)  # the tail decays
    assert np.all(np.abs(out[:, 100]) > np.abs(out[:, 101:]).max(axis=1) * 0.5)  # direct path kept


def test_reverb_probability_and_identity_when_off(clips):
    seed = tf.constant([3, 3], tf.int64)
    half = reverberate(tf.constant(clips), 0.3, 0.5, seed, SR).numpy()
    changed = ~np.all(np.isclose(half, clips, atol=1e-6), axis=1)
    assert 0.2 < changed.mean() < 0.8
    np.testing.assert_array_equal(reverberate(tf.constant(clips), 0.3, 0.0, seed, SR).numpy(), clips)


def test_reverb_compiles_under_xla(clips, white):
    cfg = AugmentConfig(reverb_prob=1.0, reverb_rt60=0.3)
    seed = tf.constant([7, 9], tf.int64)
    eager = augment(tf.constant(clips), tf.constant(white), seed, cfg, SR)
    xla = augment_function(cfg, SR)(tf.constant(clips), tf.constant(white), seed)
    np.testing.assert_allclose(xla.numpy(), eager.numpy(), atol=2e-4)


def _centred(seed: int, frames: int = 51, n: int = 40) -> tf.Tensor:
    x = tf.random.stateless_normal([6, frames, n], [seed, 0])
    return x - tf.reduce_mean(x, axis=1, keepdims=True)  # as after cepstral mean subtraction


def test_frequency_masks_blank_whole_mel_channels_and_keep_the_rest():
    fc = FeatureConfig()
    dct = dct_matrix(fc)  # [n_mels, n_mfcc]
    x = _centred(0)
    config = AugmentConfig(freq_masks=2, freq_mask_bands=8)
    y = spec_mask(x, dct, config, tf.constant([5, 6], tf.int64)).numpy()
    mel_x = np.einsum("btc,mc->btm", x.numpy(), dct)
    mel_y = np.einsum("btc,mc->btm", y, dct)
    # [batch, n_mels]: channels at their mean (0), up to float32 rounding of two DCT projections
    # of values ~4 (1e-6); a kept channel's 51 frames are never all that small
    blank = np.all(np.abs(mel_y) < 1e-3, axis=1)
    for b in range(len(y)):
        # at most 2 bands of at most 8 channels; every other channel exactly as before
        assert blank[b].sum() <= 16
        np.testing.assert_allclose(mel_y[b][:, ~blank[b]], mel_x[b][:, ~blank[b]], atol=1e-4)
        runs = np.diff(np.concatenate([[0], blank[b].astype(int), [0]]))
        assert (runs == 1).sum() <= 2  # contiguous bands
    assert blank.any(axis=1).sum() >= 4  # most of 6 clips got a non-empty mask
    assert not np.all(blank[0] == blank[1]) or not np.all(blank[1] == blank[2])  # per clip


def test_time_masks_set_frames_to_the_clip_mean_and_are_seeded():
    dct = dct_matrix(FeatureConfig())
    x = _centred(1) + 3.0  # clip mean 3 in every coefficient
    config = AugmentConfig(time_masks=2, time_mask_frames=10)
    seed = tf.constant([1, 2], tf.int64)
    y = spec_mask(x, dct, config, seed).numpy()
    # [batch, frames]; the clip mean, taken in float32 over 51 frames of values ~3, is 3 only to
    # a few 1e-6, while a kept frame has 40 coefficients ~N(3, 1)
    at_mean = np.all(np.abs(y - 3.0) < 1e-3, axis=2)
    changed = np.any(y != x.numpy(), axis=2)
    np.testing.assert_array_equal(changed, at_mean)  # only masked frames change
    assert (at_mean.sum(axis=1) <= 20).all() and at_mean.sum() > 0
    np.testing.assert_array_equal(spec_mask(x, dct, config, seed), y)
    assert np.any(spec_mask(x, dct, config, tf.constant([1, 3], tf.int64)).numpy() != y)


def test_no_masks_is_identity():
    dct = dct_matrix(FeatureConfig())
    x = _centred(2)
    assert not AugmentConfig().masks and AugmentConfig(time_masks=1).masks
    off = AugmentConfig(freq_masks=3, freq_mask_bands=0, time_masks=0)
    assert not off.masks
    np.testing.assert_array_equal(spec_mask(x, dct, off, tf.constant([0, 0], tf.int64)), x)

