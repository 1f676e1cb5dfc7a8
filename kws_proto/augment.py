"""Waveform augmentation in TensorFlow, redrawn for every episode from one seed.

The protocol of Parnami & Lee 2020 ("Few-shot keyword spotting with prototypical networks",
arXiv 2007.14463), itself TensorFlow's speech-commands recipe: every clip is shifted in time by
up to +-100 ms (zero fill) and mixed with a random stretch of background noise scaled by a volume
drawn from U(0, 0.1); the sum is clipped to [-1, 1].  The noise recordings are used as recorded
(not normalised), as in the reference.  All randomness comes from stateless ops keyed by a
``seed`` tensor of shape ``[2]``, so the same seed gives the same augmentation in eager mode,
inside ``tf.function``, under XLA and inside ``tf.data``.  TensorFlow is imported inside the
functions, so configs can import :class:`AugmentConfig` cheaply.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, fields
from typing import Sequence

import numpy as np

from kws_proto.audio import read_audio
from kws_proto.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """What training episodes do to each waveform before the MFCC.

    Attributes
    ----------
    enabled : bool
        False: training reads the un-augmented feature cache instead.
    noise_prob : float in [0, 1]
        Probability that a clip gets background noise.
    noise_volume : float in [0, 1]
        Noise is scaled by a volume drawn from U(0, noise_volume) per clip.
    time_shift_ms : float >= 0
        Each clip moves by a whole number of samples drawn uniformly within +-time_shift_ms.
    speed : float in [0, 0.5)
        Speed perturbation (tempo and pitch together, like ``sox speed``): each clip is
        resampled about its centre at a rate drawn from U(1 - speed, 1 + speed); 0 disables it
        (the published protocol).
    silence_volume : float in [0, 1]
        The "silence" class is background noise at a volume drawn from U(0, silence_volume).
    """

    enabled: bool = True
    noise_prob: float = 1.0
    noise_volume: float = 0.1
    time_shift_ms: float = 100.0
    silence_volume: float = 0.1
    speed: float = 0.0
    reverb_prob: float = 0.0
    reverb_rt60: float = 0.5

    def __post_init__(self) -> None:
        if not 0.1 <= self.reverb_rt60 <= 1.0:
            raise ConfigError(f"augment.reverb_rt60={self.reverb_rt60!r} must be in [0.1, 1]")
        if not 0.0 <= self.speed < 0.5:
            raise ConfigError(f"augment.speed={self.speed!r} must be in [0, 0.5)")
        for name in ("noise_prob", "noise_volume", "silence_volume", "reverb_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"augment.{name}={v!r} must be in [0, 1]")
        if not self.time_shift_ms >= 0.0:
            raise ConfigError(f"augment.time_shift_ms={self.time_shift_ms!r} must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        """Build from a dict; an unknown key is a :class:`ConfigError` naming it."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"augment: unknown key(s) {unknown}")
        return cls(**d)


def load_noise(paths: Sequence[str | os.PathLike], sr: int = 16000) -> np.ndarray:
    """Background-noise recordings read at ``sr`` and joined end to end.

    Parameters
    ----------
    paths : sequence of path
        E.g. :func:`kws_proto.dataset.noise_files` of a dataset folder (may be empty).

    Returns
    -------
    noise : np.ndarray [shape=(n,), dtype=float32]
        Empty when ``paths`` is.
    """
    parts = [read_audio(p, sr) for p in paths]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


ALG = "philox"  # one algorithm everywhere, so eager, graph and XLA code draw the same numbers


def seeds(seed: tf.Tensor, n: int) -> tf.Tensor:
    """``n`` independent stateless seeds derived from one: ``[2] -> [n, 2]``."""
    import tensorflow as tf

    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n, alg=ALG)


def uniform(shape, seed: tf.Tensor, minval, maxval, dtype=None) -> tf.Tensor:
    """Stateless uniform draws in ``[minval, maxval)`` that XLA reproduces bit for bit.

    Integers come from ``tf.random.stateless_uniform`` (Philox); floats (``dtype`` None:
    float32) are made from 24-bit integers, because XLA turns Philox bits into floats
    differently from the CPU kernel.
    """
    import tensorflow as tf

    dtype = tf.float32 if dtype is None else dtype

    if dtype.is_integer:
        return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype, alg=ALG)
    bits = tf.random.stateless_uniform(shape, seed, 0, 1 << 24, tf.int32, alg=ALG)
    return minval + (maxval - minval) * (tf.cast(bits, dtype) * 2.0**-24)


def noise_segments(noise: tf.Tensor, n: int, num_samples: int, seed: tf.Tensor) -> tf.Tensor:
    """``n`` stretches of ``num_samples`` samples each, cut at random offsets from ``noise``.

    Parameters
    ----------
    noise : tf.Tensor [shape=(m,), m >= num_samples]
    n : int or scalar tf.Tensor
    seed : tf.Tensor [shape=(2,)]

    Returns
    -------
    segments : tf.Tensor [shape=(n, num_samples), dtype=float32]
    """
    import tensorflow as tf

    num_samples = tf.cast(num_samples, tf.int64)
    span = tf.shape(noise, out_type=tf.int64)[0] - num_samples + 1
    start = uniform([n], seed, 0, span, tf.int64)
    idx = start[:, None] + tf.range(num_samples)[None, :]  # [n, num_samples]
    return tf.gather(noise, idx)


def time_shift(waves: tf.Tensor, max_shift: int, seed: tf.Tensor) -> tf.Tensor:
    """Shift each row by its own whole number of samples in ``[-max_shift, max_shift]``, zero-fill.

    Parameters
    ----------
    waves : tf.Tensor [shape=(batch, n)]
    max_shift : int >= 0
    seed : tf.Tensor [shape=(2,)]

    Returns
    -------
    shifted : tf.Tensor [shape=(batch, n)]
        ``shifted[b, t] = waves[b, t - s_b]`` where that index exists, else 0.
    """
    import tensorflow as tf

    if max_shift == 0:
        return waves
    batch, n = tf.shape(waves)[0], tf.shape(waves)[1]
    shift = uniform([batch], seed, -max_shift, max_shift + 1, tf.int32)
    src = tf.range(n)[None, :] - shift[:, None]  # [batch, n] source sample of each output
    inside = (src >= 0) & (src < n)
    moved = tf.gather(waves, tf.clip_by_value(src, 0, n - 1), batch_dims=1)
    return tf.where(inside, moved, tf.zeros_like(moved))


def speed_perturb(waves: tf.Tensor, max_change: float, seed: tf.Tensor) -> tf.Tensor:
    """Play each row faster or slower about its centre, by its own rate in ``1 +- max_change``.

    Linear interpolation, zero outside the clip: ``out[b, t] = waves[b, c + (t - c) * r_b]`` with
    ``c = (n - 1) / 2``, so a word centred in its clip stays centred; ``r_b > 1`` shortens the word
    and raises its pitch by the factor ``r_b``.  There is no anti-alias filter: at ``r = 1.15``
    content above ~7 kHz of a 16 kHz clip folds back, where speech has little energy and the
    default mel range (up to 7 kHz) barely looks.

    Parameters
    ----------
    waves : tf.Tensor [shape=(batch, n)]
    max_change : float in [0, 0.5)
    seed : tf.Tensor [shape=(2,)]

    Returns
    -------
    perturbed : tf.Tensor [shape=(batch, n)]
    """
    import tensorflow as tf

    if max_change == 0:
        return waves
    batch, n = tf.shape(waves)[0], tf.shape(waves)[1]
    rate = uniform([batch], seed, 1.0 - max_change, 1.0 + max_change)
    centre = tf.cast(n - 1, tf.float32) / 2.0
    src = centre + (tf.range(n, dtype=tf.float32)[None, :] - centre) * rate[:, None]  # [batch, n]
    left = tf.floor(src)
    frac = src - left
    i0 = tf.cast(left, tf.int32)
    last = n - 1
    a = tf.gather(waves, tf.clip_by_value(i0, 0, last), batch_dims=1)
    b = tf.gather(waves, tf.clip_by_value(i0 + 1, 0, last), batch_dims=1)
    inside = (src >= 0.0) & (src <= tf.cast(last, tf.float32))
    return tf.where(inside, a + frac * (b - a), tf.zeros_like(a))


RT60_MIN = 0.1


def reverberate(waves: tf.Tensor, max_rt60: float, prob: float, seed: tf.Tensor,
                sr: int = 16000) -> tf.Tensor:
    """Convolve each row, with probability ``prob``, with its own synthetic room response.

    The response is ``h[0] = 1`` (the direct path) followed by white noise under an envelope
    ``exp(-6.9 t / RT60)`` (60 dB down after RT60), ``RT60 ~ U(0.1 s, max_rt60)``, the noise
    scaled so that the reverberant tail carries as much energy as the direct path (a
    direct-to-reverberant ratio of 0 dB). The response is ``max_rt60`` long; the reverberant
    clip is cut to the input length and rescaled to the input's RMS, so that the level stays
    the augmentation's other draws' business.  Convolution by FFT.

    Parameters
    ----------
    waves : tf.Tensor [shape=(batch, n)]
    max_rt60 : float in [0.1, 1]
    prob : float in [0, 1]
    seed : tf.Tensor [shape=(2,)]
    sr : int

    Returns
    -------
    reverberant : tf.Tensor [shape=(batch, n)]
    """
    import tensorflow as tf

    if prob == 0:
        return waves
    n = int(waves.shape[1]) if waves.shape[1] is not None else None
    if n is None:
        raise ConfigError("reverberate needs clips of a static length")
    batch = tf.shape(waves)[0]
    s_rt, s_tail, s_apply = tf.unstack(seeds(seed, 3))
    length = int(round(max_rt60 * sr))
    rt60 = uniform([batch], s_rt, RT60_MIN, max_rt60)  # [batch]
    t = tf.range(1, length, dtype=tf.float32)[None, :] / sr  # [1, length - 1]
    tail = uniform([batch, length - 1], s_tail, -1.0, 1.0) * tf.exp(-6.9 * t / rt60[:, None])
    tail /= tf.sqrt(tf.reduce_sum(tf.square(tail), axis=1, keepdims=True))  # unit energy: 0 dB DRR
    rir = tf.concat([tf.ones([batch, 1]), tail], axis=1)  # [batch, length]
    fft_len = 1 << (n + length - 1).bit_length()
    wet = tf.signal.irfft(tf.signal.rfft(waves, [fft_len]) * tf.signal.rfft(rir, [fft_len]),
                          [fft_len])[:, :n]  # [batch, n]
    rms = lambda x: tf.sqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True))  # noqa: E731
    wet *= rms(waves) / tf.maximum(rms(wet), 1e-8)
    apply = uniform([batch], s_apply, 0.0, 1.0) < prob
    return tf.where(apply[:, None], wet, waves)


def augment(
    waves: tf.Tensor, noise: tf.Tensor | None, seed: tf.Tensor, config: AugmentConfig,
    sr: int = 16000,
) -> tf.Tensor:
    """Speed perturbation, reverberation, time shift, then background noise at a random volume,
    clipped to [-1, 1].

    Applies ``config`` whatever ``config.enabled`` says (that flag is the pipeline's choice).

    Parameters
    ----------
    waves : tf.Tensor [shape=(batch, n), dtype=float32]
    noise : tf.Tensor [shape=(m,), m >= n] or None
        Joined noise recordings; ``None`` or empty: time shift only.
    seed : tf.Tensor [shape=(2,), integer]
        Fixes every random draw.
    config : AugmentConfig
    sr : int
        Sample rate of ``waves`` (turns ``time_shift_ms`` into samples).

    Returns
    -------
    waves : tf.Tensor [shape=(batch, n), dtype=float32]
    """
    import tensorflow as tf

    s_shift, s_noise, s_volume, s_apply = tf.unstack(seeds(seed, 4))
    if config.speed:
        s_speed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 5, alg=ALG)
        waves = speed_perturb(waves, config.speed, s_speed)
    if config.reverb_prob:
        s_reverb = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 6, alg=ALG)
        waves = reverberate(waves, config.reverb_rt60, config.reverb_prob, s_reverb, sr)
    out = time_shift(waves, int(round(config.time_shift_ms * sr / 1000)), s_shift)
    no_noise = noise is None or int(noise.shape[0]) == 0
    if no_noise or config.noise_volume == 0 or config.noise_prob == 0:
        return out
    batch, n = tf.shape(out)[0], out.shape[1]
    if n is None:
        n = tf.shape(out)[1]
    elif noise.shape[0] < n:
        raise ConfigError(f"noise of {noise.shape[0]} samples is shorter than a clip ({n})")
    volume = uniform([batch], s_volume, 0.0, config.noise_volume)
    volume *= tf.cast(uniform([batch], s_apply, 0.0, 1.0) < config.noise_prob, tf.float32)
    mixed = out + volume[:, None] * noise_segments(noise, batch, n, s_noise)
    return tf.clip_by_value(mixed, -1.0, 1.0)


def silence(
    noise: tf.Tensor, n: int, num_samples: int, seed: tf.Tensor, volume: float
) -> tf.Tensor:
    """``n`` clips of background noise alone, each at a volume drawn from U(0, ``volume``).

    Returns
    -------
    clips : tf.Tensor [shape=(n, num_samples), dtype=float32]
    """
    import tensorflow as tf

    s_noise, s_volume = tf.unstack(seeds(seed, 2))
    gain = uniform([n], s_volume, 0.0, volume)
    clips = gain[:, None] * noise_segments(noise, n, num_samples, s_noise)  # [n, num_samples]
    return tf.clip_by_value(clips, -1.0, 1.0)


@functools.lru_cache(maxsize=16)
def augment_function(config: AugmentConfig, sr: int = 16000):
    """:func:`augment` for ``config`` as an XLA-compiled ``tf.function``.

    The shift and the noise cut are per-clip gathers, which TensorFlow's graph kernels run about
    ten times slower than XLA does on CPU; this is what the episode pipeline calls.  Results
    equal :func:`augment`'s to float rounding (XLA may fuse the multiply-add).

    Returns
    -------
    fn : callable
        ``fn(waves [batch, n], noise [m] or None, seed [2]) -> waves [batch, n]``; XLA compiles
        once per distinct batch size, and the function is shared by every caller with the same
        ``(config, sr)``.
    """
    import tensorflow as tf

    return tf.function(lambda waves, noise, seed: augment(waves, noise, seed, config, sr),
                       jit_compile=True)
