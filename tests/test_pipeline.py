"""Episode tensors through tf.data: shapes, determinism, agreement with the caches, errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from kws_proto.audio.augment import AugmentConfig, load_noise
from kws_proto.data.cache import feature_cache, waveform_cache
from kws_proto.data.dataset import NOISE_DIR, Clip, Manifest, load_manifest, noise_files, write_manifest
from kws_proto.data.episodes import Episode, EpisodeSampler, fixed_episodes
from kws_proto.errors import ConfigError, DatasetError
from kws_proto.audio.features import FeatureConfig
from kws_proto.data.pipeline import EpisodePipeline

from conftest import assert_close_to_scale

SR = 16000
FC = FeatureConfig()
WORDS = ("low", "mid", "high", "chirp", "buzz")
NO_CHANGE = AugmentConfig(noise_volume=0.0, time_shift_ms=0.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """5 "keywords" (tone patterns) x 3 speakers x 4 takes of 0.6-1.2 s, 2 s of noise, caches."""
    root = tmp_path_factory.mktemp("tiny_ds")
    rng = np.random.default_rng(0)
    clips = []
    for w, word in enumerate(WORDS):
        for s in range(3):
            for take in range(4):
                n = int(SR * rng.uniform(0.6, 1.2))
                t = np.arange(n) / SR
                f0 = 300 * (w + 1) * (1 + 0.05 * s)
                y = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.2 * t * (w == 3)))
                y *= np.hanning(n) + 0.02 * rng.standard_normal(n)
                path = f"{word}/spk{s}_{take}.wav"
                (root / word).mkdir(exist_ok=True)
                sf.write(root / path, y.astype(np.float32), SR)
                clips.append(Clip(path, word, f"spk{s}", n / SR, SR))
    (root / NOISE_DIR).mkdir()
    sf.write(root / NOISE_DIR / "hum.wav", rng.uniform(-0.5, 0.5, 2 * SR).astype(np.float32), SR)
    write_manifest(root, clips)
    m = load_manifest(root)
    return {
        "manifest": m,
        "features": feature_cache(m, FC, progress=False),
        "waveforms": waveform_cache(m, FC, progress=False),
        "noise": load_noise(noise_files(root), SR),
    }


def pipeline(data, augment=None, seed=0, **overrides):
    kwargs = dict(features=data["features"], waveforms=data["waveforms"], noise=data["noise"])
    return EpisodePipeline(FC, augment=augment, seed=seed, **(kwargs | overrides))


def sampler(data, seed=0, **kwargs):
    args = dict(n_way=3, k_shot=2, n_query=3) | kwargs
    return EpisodeSampler(data["manifest"], WORDS[:4], seed=seed, **args)


def take(ds, n):
    return [(s.numpy(), q.numpy()) for s, q in ds.take(n)]


@pytest.mark.parametrize("augment", [None, AugmentConfig()])
def test_shapes_dtypes_and_element_spec(data, augment):
    ds = pipeline(data, augment).dataset(
        sampler(data, unknown_classes=[WORDS[4]], silence=True), stop=2
    )
    for spec in ds.element_spec:
        assert spec.shape.as_list() == [None, None, *FC.shape] and spec.dtype == tf.float32
    out = take(ds, 5)
    assert len(out) == 2  # stop=2
    for s, q in out:
        # 3 keywords + unknown + silence
        assert s.shape == (5, 2, *FC.shape) and q.shape == (5, 3, *FC.shape)
        assert np.isfinite(s).all() and np.isfinite(q).all()


def test_plain_path_equals_feature_cache_rows(data):
    smp = sampler(data, seed=4)
    for i, (s, q) in enumerate(take(pipeline(data).dataset(smp), 4)):
        e = smp.sample(i)
        np.testing.assert_array_equal(s, data["features"][e.support])
        np.testing.assert_array_equal(q, data["features"][e.query])


def test_waveforms_without_feature_cache_match_it(data):
    """MFCC computed in the graph from raw waveforms = the cache (the cache's own front end)."""
    smp = sampler(data, seed=1)
    for path in (pipeline(data, features=None), pipeline(data, NO_CHANGE)):
        (s, q), = take(path.dataset(smp), 1)
        e = smp.sample(0)
        # another batch and graph than the cache's: float32 rounding of MFCC of magnitude ~400
        assert_close_to_scale(s, data["features"][e.support])
        assert_close_to_scale(q, data["features"][e.query])


def test_augmentation_is_redrawn_per_episode_and_seed(data):
    e = sampler(data).sample(0)
    again = Episode(7, e.classes, e.support, e.query)  # the same clips as another episode
    a, b, c = take(pipeline(data, AugmentConfig()).dataset([e, e, again]), 3)
    np.testing.assert_array_equal(a[0], b[0])  # the same episode: the same draws
    assert np.abs(a[0] - c[0]).mean() > 0.5  # another episode: new shift and noise
    assert np.abs(a[0] - data["features"][e.support]).mean() > 0.5
    d, = take(pipeline(data, AugmentConfig(), seed=1).dataset([e]), 1)
    assert np.abs(a[0] - d[0]).mean() > 0.5


def test_spectrogram_masks_reach_training_episodes(data):
    """Time masks in the config show up as frames at the clip mean (0 after mean subtraction)."""
    e = sampler(data).sample(0)
    masked = NO_CHANGE.__class__(**(NO_CHANGE.to_dict() | {"time_masks": 2,
                                                          "time_mask_frames": 10}))
    (s0, q0), = take(pipeline(data, NO_CHANGE).dataset([e]), 1)
    (s1, q1), = take(pipeline(data, masked).dataset([e]), 1)
    flat = lambda x: x.reshape(-1, *FC.shape)  # noqa: E731
    clips = flat(np.concatenate([s1, q1], axis=1))  # [clips, frames, n_mfcc]
    plain = flat(np.concatenate([s0, q0], axis=1))
    blank = np.all(np.abs(clips - plain.mean(axis=1, keepdims=True)) < 1e-3, axis=2)
    assert blank.any(axis=1).mean() > 0.5  # most clips lost some frames
    keep = ~blank
    assert_close_to_scale(clips[keep], plain[keep])


def test_same_seed_same_tensors_across_builds_and_resume(data):
    runs = [take(pipeline(data, AugmentConfig()).dataset(sampler(data, seed=2)), 4)
            for _ in range(2)]
    for (s1, q1), (s2, q2) in zip(*runs):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(q1, q2)
    resumed = take(pipeline(data, AugmentConfig()).dataset(sampler(data, seed=2), start=2), 2)
    for (s1, q1), (s2, q2) in zip(runs[0][2:], resumed):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(q1, q2)


def test_fixed_episode_list_equals_sampler_stream(data):
    smp = sampler(data, seed=5)
    pipe = pipeline(data, AugmentConfig())
    streamed = take(pipe.dataset(smp, start=3), 2)
    listed = take(pipe.dataset(fixed_episodes(smp, 2, start=3)), 5)
    assert len(listed) == 2
    for (s1, q1), (s2, q2) in zip(streamed, listed):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(q1, q2)


def test_silence_rows_are_noise_clips_alike_on_both_paths(data):
    smp = sampler(data, seed=3, silence=True)
    (s_plain, q_plain), = take(pipeline(data).dataset(smp), 1)
    (s_aug, q_aug), = take(pipeline(data, NO_CHANGE).dataset(smp), 1)
    assert_close_to_scale(s_plain[-1], s_aug[-1])  # two paths: float32 rounding apart
    assert_close_to_scale(q_plain[-1], q_aug[-1])
    silence = np.concatenate([s_plain[-1], q_plain[-1]])  # [k + q, frames, n_mfcc]
    assert len({row.tobytes() for row in silence}) == len(silence)  # each its own stretch
    words = np.concatenate([s_plain[:-1], q_plain[:-1]], axis=1).reshape(-1, *FC.shape)
    assert not any(np.allclose(w, x, atol=1e-2) for w in words for x in silence)


def test_int16_waveform_cache(data, tmp_path):
    wave16 = waveform_cache(data["manifest"], FC, cache_dir=tmp_path, progress=False, dtype="int16")
    smp = sampler(data)
    (s16, _), = take(pipeline(data, NO_CHANGE, waveforms=wave16).dataset(smp), 1)
    (s32, _), = take(pipeline(data, NO_CHANGE).dataset(smp), 1)
    np.testing.assert_allclose(s16, s32, atol=0.05)


def test_errors_are_named(data):
    with pytest.raises(ConfigError, match="augmentation needs the waveform cache"):
        pipeline(data, AugmentConfig(), waveforms=None)
    with pytest.raises(ConfigError, match=r"feature cache of shape \(60, 51, 13\)"):
        pipeline(data, features=np.zeros((60, 51, 13), np.float32))
    with pytest.raises(ConfigError, match="waveform cache of shape"):
        pipeline(data, AugmentConfig(), waveforms=np.zeros((60, 8000), np.float32))
    with pytest.raises(ConfigError, match="a feature cache or a waveform cache"):
        pipeline(data, features=None, waveforms=None)
    with pytest.raises(ConfigError, match="silence class needs background noise"):
        pipeline(data, noise=None).dataset(sampler(data, silence=True))
    small = Manifest(data["manifest"].root, data["manifest"].clips[:40])
    other = EpisodeSampler(small, small.keywords[:2], 2, 1, 1)
    with pytest.raises(DatasetError, match="manifest has 40 rows but the cache 60"):
        pipeline(data).dataset(other)


def test_dither_reaches_plain_clips_but_not_the_augmented_training_feed(data):
    """The front end's dither (FeatureConfig.dither_db) is in the cache that validation and
    evaluation read and in the plain path from waveforms; augmented clips are computed without it."""
    from kws_proto.audio.features import mfcc_batch

    dithered = FeatureConfig(dither_db=30.0)  # loud enough to move these tone clips' features
    smp = sampler(data, seed=2)
    e = smp.sample(0)
    waves = data["waveforms"][e.support.ravel()]
    with_dither = mfcc_batch(waves, dithered).numpy()
    without = mfcc_batch(waves, FC).numpy()
    assert np.abs(with_dither - without).mean() > 0.5
    kwargs = dict(features=None, waveforms=data["waveforms"], noise=data["noise"])
    (plain, _), = take(EpisodePipeline(dithered, **kwargs).dataset(smp), 1)
    (fed, _), = take(EpisodePipeline(dithered, augment=NO_CHANGE, **kwargs).dataset(smp), 1)
    # tf.data's graph against eager ops: MFCC of magnitude ~170 agree to float32 rounding, which
    # on another CPU reaches 1e-6 of it (1.8e-4 seen on an AMD EPYC), against a dither effect > 0.5
    assert_close_to_scale(plain.reshape(with_dither.shape), with_dither)
    assert_close_to_scale(fed.reshape(without.shape), without)
