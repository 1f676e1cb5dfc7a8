"""kws_proto.audio.features: the TensorFlow path agrees with librosa; configs validate and hash stably."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import tensorflow as tf

from kws_proto.audio.loading import load_audio
from kws_proto.errors import ConfigError
from kws_proto.audio.features import FeatureConfig, mfcc, mfcc_batch, mfcc_function

from conftest import assert_close_to_scale

DATA = Path(__file__).parent / "data"
# max abs difference between the TensorFlow path and librosa, on every clip: measured up to
# 9.3e-4 (hop_not_dividing_window: a tone at the top of the mel range, whose other bands lie far
# below the peak, where float32 spectrum rounding shows), so 1e-3 left another CPU's FFT and
# matmuls no room; 5e-3 is still ~1e-5 of the features' magnitude (up to ~630)
TOLERANCE = 5e-3

CONFIGS = {
    "default": FeatureConfig(),
    "raw": FeatureConfig(normalize="none"),
    "meanvar": FeatureConfig(normalize="meanvar"),
    "reflect": FeatureConfig(pad_mode="reflect"),
    "window_inside_larger_fft": FeatureConfig(n_fft=1024),
    "tf_recipe_30_10ms": FeatureConfig(window_ms=30, hop_ms=10, n_fft=512),
    "hop_not_dividing_window": FeatureConfig(window_ms=25, hop_ms=10, n_fft=400, fmax=8000,
                                             n_mfcc=13, crop="center"),
    "no_top_db": FeatureConfig(top_db=None),
    "dither_50db": FeatureConfig(dither_db=50.0),
    "8khz_half_second": FeatureConfig(sample_rate=8000, clip_seconds=0.5, n_fft=512, fmax=4000),
}


def _tone(freq: float, config: FeatureConfig, amp: float = 0.5) -> np.ndarray:
    t = np.arange(config.num_samples) / config.sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _clips(config: FeatureConfig) -> dict[str, np.ndarray]:
    """Real speech, noise at several levels, tones, silence and a padded short clip."""
    n, sr = config.num_samples, config.sample_rate
    rng = np.random.default_rng(0)
    clips = {f"speech:{p.name}": load_audio(p, sr, config.clip_seconds, config.crop)
             for p in sorted(DATA.rglob("*")) if p.suffix in (".wav", ".flac")}
    for amp in (1e-5, 1e-3, 0.1, 1.0):
        clips[f"noise:{amp}"] = (amp * rng.standard_normal(n)).astype(np.float32)
    for freq in (100.0, 440.0, 1000.0, 3100.0, 0.95 * config.fmax):  # inside the mel range
        clips[f"tone:{freq}"] = _tone(freq, config)
    clips["silence"] = np.zeros(n, np.float32)
    short = np.zeros(n, np.float32)
    short[n // 3 : n // 2] = 0.3 * rng.standard_normal(n // 2 - n // 3)
    clips["burst_between_zeros"] = short
    return clips


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_batch_path_agrees_with_librosa_on_every_clip(config):
    clips = _clips(config)
    batch = mfcc_batch(np.stack(list(clips.values())), config).numpy()
    assert batch.shape == (len(clips), config.num_frames, config.n_mfcc)
    assert batch.dtype == np.float32
    for (name, y), fast in zip(clips.items(), batch):
        ref = mfcc(y, config)
        assert ref.shape == config.shape and ref.dtype == np.float32
        assert np.max(np.abs(fast - ref)) <= TOLERANCE, name


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_dft_spectrum_agrees_with_fft_and_librosa_on_every_clip(config):
    # "dft" (matrix products, for TFLite) and "fft" differ only by float32 rounding of the
    # spectrum: measured <= 1e-4 on speech and noise, up to 9e-4 on a tone at the top of the
    # mel range (hop_not_dividing_window); both stay within TOLERANCE of librosa.
    clips = _clips(config)
    Y = np.stack(list(clips.values()))
    fft = mfcc_batch(Y, config, spectrum="fft").numpy()
    dft = mfcc_batch(Y, config, spectrum="dft").numpy()
    assert dft.shape == fft.shape == (len(clips), config.num_frames, config.n_mfcc)
    assert dft.dtype == np.float32
    for (name, y), a, b in zip(clips.items(), fft, dft):
        assert np.max(np.abs(b - a)) <= TOLERANCE, name
        assert np.max(np.abs(b - mfcc(y, config))) <= TOLERANCE, name


def test_dft_spectrum_graph_has_no_fft_and_unknown_spectrum_is_an_error():
    config = FeatureConfig()
    fn = tf.function(lambda Y: mfcc_batch(Y, config, spectrum="dft"), autograph=False,
                     input_signature=[tf.TensorSpec([None, config.num_samples], tf.float32)])
    ops = {op.type for op in fn.get_concrete_function().graph.get_operations()}
    assert "MatMul" in ops and not any("FFT" in t for t in ops), sorted(ops)
    with pytest.raises(ConfigError, match=r"spectrum='rfft'"):
        mfcc_batch(np.zeros((1, config.num_samples), np.float32), config, spectrum="rfft")


@pytest.mark.shared
def test_agreement_on_real_corpora(fsdd_dir, picovoice_dir):
    config = FeatureConfig()
    paths = sorted(fsdd_dir.glob("*.wav"))[::150] + sorted(picovoice_dir.glob("*/*.flac"))[1::200]
    paths = [p for p in paths if p.parent.name != "alexa"]  # alexa/ holds the corrupt files
    Y = np.stack([load_audio(p, 16000, 1.0, "loudest") for p in paths])
    diff = np.abs(mfcc_batch(Y, config).numpy() - np.stack([mfcc(y, config) for y in Y]))
    worst = diff.max(axis=(1, 2))
    assert worst.max() <= TOLERANCE, paths[int(worst.argmax())]


def test_reference_is_librosas_mfcc_with_the_papers_parameters():
    y = load_audio(DATA / "fsdd" / "7_theo_0.wav", 16000, 1.0, "center")
    expected = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=40, n_fft=640, hop_length=320,
                                    win_length=640, n_mels=40, fmin=20.0, fmax=7000.0)
    # the same librosa calls on the same input on both sides: equal on any machine, so tight
    np.testing.assert_allclose(mfcc(y, FeatureConfig(normalize="none")), expected.T, atol=1e-5)
    # the default subtracts each coefficient's mean over the clip (cepstral mean normalisation)
    centred = expected.T - expected.T.mean(axis=0, keepdims=True)
    np.testing.assert_allclose(mfcc(y), centred, atol=1e-4)
    assert FeatureConfig().shape == (51, 40)  # Parnami & Lee: 51 x 40 per second


def test_mfcc_batch_in_a_graph_with_unknown_batch():
    config = FeatureConfig()
    fn = mfcc_function(config)
    Y = np.stack(list(_clips(config).values()))
    for size in (1, 3, len(Y)):
        out = fn(tf.constant(Y[:size]))
        assert out.shape == (size, 51, 40)
        assert_close_to_scale(out.numpy(), mfcc_batch(Y[:size], config).numpy())  # graph vs eager
    assert fn.experimental_get_tracing_count() == 1
    graph = fn.get_concrete_function().graph
    assert not any("PyFunc" in op.type for op in graph.get_operations())


def test_exported_in_a_saved_model_without_python(tmp_path):
    config = FeatureConfig()
    module = tf.Module()
    module.features = mfcc_function(config)
    tf.saved_model.save(module, str(tmp_path / "frontend"))
    loaded = tf.saved_model.load(str(tmp_path / "frontend"))
    Y = np.stack(list(_clips(config).values())[:4])
    assert_close_to_scale(loaded.features(tf.constant(Y)).numpy(), mfcc_batch(Y, config).numpy())


def test_graph_with_unknown_length_checks_it_at_run_time():
    config = FeatureConfig()
    fn = tf.function(lambda Y: mfcc_batch(Y, config),
                     input_signature=[tf.TensorSpec([None, None], tf.float32)])
    assert fn(tf.zeros([2, 16000])).shape == (2, 51, 40)
    with pytest.raises(tf.errors.InvalidArgumentError):
        fn(tf.zeros([2, 15999]))


@pytest.mark.parametrize("bad", [np.zeros(15999, np.float32), np.zeros((1, 16000), np.float32)])
def test_mfcc_rejects_wrong_length(bad):
    with pytest.raises(ConfigError, match=r"16000"):
        mfcc(bad)


@pytest.mark.parametrize("bad", [np.zeros((2, 15999)), np.zeros(16000), np.zeros((2, 2, 16000))])
def test_mfcc_batch_rejects_wrong_shape(bad):
    with pytest.raises(ConfigError, match=r"16000"):
        mfcc_batch(bad)


def test_mfcc_batch_accepts_float64_numpy():
    y = load_audio(DATA / "fsdd" / "1_jackson_0.wav", 16000, 1.0, "center")
    out = mfcc_batch(y[None].astype(np.float64))
    assert out.dtype == tf.float32
    assert np.max(np.abs(out.numpy()[0] - mfcc(y))) <= TOLERANCE


# -- FeatureConfig ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"sample_rate": 0}, "sample_rate=0"),
        ({"sample_rate": 16000.5}, "sample_rate=16000.5"),
        ({"sample_rate": "16k"}, "sample_rate='16k'"),
        ({"clip_seconds": -1.0}, "clip_seconds=-1.0"),
        ({"window_ms": 0}, "window_ms=0"),
        ({"hop_ms": 0.01}, "hop_ms=0.01"),
        ({"n_fft": 512}, "n_fft=512"),
        ({"n_mels": 0, "n_mfcc": 0}, "n_mels=0"),
        ({"n_mfcc": 41}, "n_mfcc=41"),
        ({"fmin": -1.0}, "fmin=-1.0"),
        ({"fmax": 9000.0}, "fmax=9000.0"),
        ({"fmin": 7000.0}, "fmin=7000.0"),
        ({"fmax": float("nan")}, "fmax=nan"),
        ({"crop": "middle"}, "crop='middle'"),
        ({"pad_mode": "edge"}, "pad_mode='edge'"),
        ({"pad_mode": "reflect", "clip_seconds": 0.01}, "pad_mode='reflect'"),
        ({"top_db": 0.0}, "top_db=0.0"),
        ({"amin": 0.0}, "amin=0.0"),
        ({"dither_db": -50.0}, "dither_db=-50.0"),
        ({"dither_db": "50"}, "dither_db='50'"),
        ({"n_fft": True}, "n_fft=True"),
    ],
)
def test_invalid_config_names_field_and_value(kwargs, field):
    with pytest.raises(ConfigError, match=field.replace("(", r"\(").replace(".", r"\.")):
        FeatureConfig(**kwargs)


def test_too_many_mel_bands_for_the_fft_is_a_config_error():
    config = FeatureConfig(n_mels=256, n_mfcc=40)  # 25 Hz bins, low mel bands narrower
    for compute in (lambda: mfcc(np.zeros(16000, np.float32), config),
                    lambda: mfcc_batch(np.zeros((1, 16000), np.float32), config)):
        with pytest.raises(ConfigError, match="n_mels=256"):
            compute()


def test_dict_round_trip_and_unknown_keys():
    config = FeatureConfig(n_mfcc=13, top_db=None, crop="center")
    d = json.loads(json.dumps(config.to_dict()))
    assert FeatureConfig.from_dict(d) == config
    assert FeatureConfig.from_dict({}) == FeatureConfig()
    with pytest.raises(ConfigError, match="n_mfccs"):
        FeatureConfig.from_dict({**d, "n_mfccs": 20})
    with pytest.raises(ConfigError, match="dict"):
        FeatureConfig.from_dict([("n_mfcc", 13)])


def test_digest_is_stable_across_processes_and_tells_configs_apart():
    config = FeatureConfig()
    code = "from kws_proto.audio.features import FeatureConfig; print(FeatureConfig().digest)"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=True).stdout.strip()
    assert other == config.digest
    assert len(config.digest) == 12 and int(config.digest, 16) >= 0
    assert FeatureConfig(clip_seconds=1, fmin=20).digest == config.digest  # 1 == 1.0
    variants = [FeatureConfig(n_mfcc=13), FeatureConfig(crop="center"), FeatureConfig(top_db=None),
                FeatureConfig(hop_ms=10.0), FeatureConfig(pad_mode="reflect"), FeatureConfig(dither_db=50)]
    digests = {config.digest} | {v.digest for v in variants}
    assert len(digests) == 1 + len(variants)


def test_derived_sizes():
    config = FeatureConfig(sample_rate=8000, clip_seconds=1.5, window_ms=30, hop_ms=10, n_fft=256,
                           fmax=3800.0)
    assert (config.num_samples, config.win_length, config.hop_length) == (12000, 240, 80)
    assert config.num_frames == 1 + 12000 // 80
    y = np.zeros(12000, np.float32)
    assert mfcc(y, config).shape == config.shape


def test_dither_fills_digital_silence_relative_to_the_peak_and_leaves_a_noisy_clip_alone():
    """The zeros padding a short word and the empty band of 8 kHz audio get a noise floor
    `dither_db` below the clip's peak, whatever the level; a recording whose own noise lies well
    above that floor hardly changes; features stay deterministic."""
    import librosa

    plain, dithered = FeatureConfig(normalize="none"), FeatureConfig(normalize="none", dither_db=50.0)
    rng = np.random.default_rng(1)
    word = np.zeros(16000, np.float32)  # a 0.3 s burst band-limited to 4 kHz, padded with zeros
    word[5000:9800] = librosa.resample(rng.standard_normal(2400).astype(np.float32), orig_sr=8000, target_sr=16000)
    for gain in (0.3, 0.003):  # -10 dB and -50 dB peak: the floor follows the level
        y = gain * word / np.abs(word).max()
        a, b = mfcc(y, plain), mfcc(y, dithered)
        silent = slice(0, 10)  # frames of the leading zeros
        assert a[silent, 0].max() < b[silent, 0].min() - 30  # c0 (energy) up from the 80 dB floor
        np.testing.assert_array_equal(b, mfcc(y, dithered))  # fixed dither: deterministic
        c0_gap = b[12:22, 0].mean() - b[silent, 0].mean()  # speech over dither, in c0 units
        if gain == 0.3:
            first_gap = c0_gap
    assert abs(c0_gap - first_gap) < 1.0  # the same relative floor at -50 dB as at -10 dB
    noisy = (0.3 * word / np.abs(word).max() + 0.01 * rng.standard_normal(16000)).astype(np.float32)
    clean = 0.3 * word / np.abs(word).max()
    on_clean = np.abs(mfcc(clean, dithered) - mfcc(clean, plain)).mean()
    on_noisy = np.abs(mfcc(noisy, dithered) - mfcc(noisy, plain)).mean()  # its noise: 20 dB above the dither
    assert on_noisy < 0.1 * on_clean, (on_noisy, on_clean)
