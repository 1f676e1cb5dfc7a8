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
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from kws_proto.audio.loading import read_audio
from kws_proto.errors import ConfigError
from kws_proto.util.typed import from_dict


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
    silence_volume : float in [0, 1]
        The "silence" class is background noise at a volume drawn from U(0, silence_volume).
    reverb_prob, reverb_rt60 : float
        Probability that a clip is convolved with a synthetic room impulse response, and the
        largest reverberation time (s) drawn for it (:func:`reverberate`).
    freq_masks, freq_mask_bands : int >= 0
        Spectrogram masking (SpecAugment, Park et al. 2019, arXiv 1904.08779) on the features:
        ``freq_masks`` bands of mel channels per clip, each ``U{0..freq_mask_bands}`` wide, are
        set to their mean over the clip (:func:`spec_mask`); 0 disables it.
    time_masks, time_mask_frames : int >= 0
        The same along time: ``time_masks`` runs of ``U{0..time_mask_frames}`` frames per clip
        take the clip's mean features.

    Levers measured and left out of the package: experiments/augmentation.md.
    """

    enabled: bool = True
    noise_prob: float = 1.0
    noise_volume: float = 0.1
    time_shift_ms: float = 100.0
    silence_volume: float = 0.1
    reverb_prob: float = 0.0
    reverb_rt60: float = 0.5
    freq_masks: int = 0
    freq_mask_bands: int = 8
    time_masks: int = 0
    time_mask_frames: int = 10

    @property
    def masks(self) -> bool:
        """Whether :func:`spec_mask` changes anything."""
        return bool(self.freq_masks and self.freq_mask_bands
                    or self.time_masks and self.time_mask_frames)

    def __post_init__(self) -> None:
        for name in ("freq_masks", "freq_mask_bands", "time_masks", "time_mask_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ConfigError(f"augment.{name}={v!r} must be an integer >= 0")
        if not 0.1 <= self.reverb_rt60 <= 1.0:
            raise ConfigError(f"augment.reverb_rt60={self.reverb_rt60!r} must be in [0.1, 1]")
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
        """Build from a mapping (:func:`kws_proto.util.typed.from_dict`): unknown keys are a
        :class:`ConfigError` naming them, missing ones default."""
        return from_dict(cls, d, "augment")


def load_noise(paths: Sequence[str | os.PathLike], sr: int = 16000) -> np.ndarray:
    """Background-noise recordings read at ``sr`` and joined end to end.

    Parameters
    ----------
    paths : sequence of path
        E.g. :func:`kws_proto.data.dataset.noise_files` of a dataset folder (may be empty).

    Returns
    -------
    noise : np.ndarray [shape=(n,), dtype=float32]
        Empty when ``paths`` is.
    """
    parts = [read_audio(p, sr) for p in paths]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


ALG = "philox"  # one algorithm everywhere, so eager, graph and XLA code draw the same numbers


#: The seed streams of one training episode, by name.  The episode's seed is split into
#: ``episode`` (``[seed, i]``) -> ``augment`` and ``silence`` (:mod:`kws_proto.data.pipeline`);
#: ``augment`` is split once more into the four draws every clip gets (time shift, noise
#: segment, noise volume, whether noise is applied) and folded with these numbers into the
#: optional draws, so that switching one on leaves every other draw as it was.  A new draw takes
#: a new number (5 and 8 are retired draws: experiments/augmentation.md).
DRAWS = {"reverb": 6, "masks": 7}


def seeds(seed: tf.Tensor, n: int) -> tf.Tensor:
    """``n`` independent stateless seeds derived from one: ``[2] -> [n, 2]``."""
    import tensorflow as tf  # lazy: TensorFlow

    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n, alg=ALG)


def fold(seed: tf.Tensor, k: int) -> tf.Tensor:
    """Seed ``[2]`` of the optional draw numbered ``k``, derived from ``seed``: adding a draw
    with a new number leaves every other draw of the same seed as it was."""
    import tensorflow as tf  # lazy: TensorFlow

    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), k, alg=ALG)


def uniform(shape, seed: tf.Tensor, minval, maxval, dtype=None) -> tf.Tensor:
    """Stateless uniform draws in ``[minval, maxval)`` that XLA reproduces bit for bit.

    Integers come from ``tf.random.stateless_uniform`` (Philox); floats (``dtype`` None:
    float32) are made from 24-bit integers, because XLA turns Philox bits into floats
    differently from the CPU kernel.
    """
    import tensorflow as tf  # lazy: TensorFlow

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
    import tensorflow as tf  # lazy: TensorFlow

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
    import tensorflow as tf  # lazy: TensorFlow

    if max_shift == 0:
        return waves
    batch, n = tf.shape(waves)[0], tf.shape(waves)[1]
    shift = uniform([batch], seed, -max_shift, max_shift + 1, tf.int32)
    src = tf.range(n)[None, :] - shift[:, None]  # [batch, n] source sample of each output
    inside = (src >= 0) & (src < n)
    moved = tf.gather(waves, tf.clip_by_value(src, 0, n - 1), batch_dims=1)
    return tf.where(inside, moved, tf.zeros_like(moved))


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
    import tensorflow as tf  # lazy: TensorFlow

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
    """Reverberation, time shift, then background noise at a random volume, clipped to [-1, 1].

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
    import tensorflow as tf  # lazy: TensorFlow

    s_shift, s_noise, s_volume, s_apply = tf.unstack(seeds(seed, 4))
    if config.reverb_prob:
        waves = reverberate(waves, config.reverb_rt60, config.reverb_prob,
                            fold(seed, DRAWS["reverb"]), sr)
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


def _band_mask(batch: tf.Tensor, size: int, n_bands: int, max_width: int,
               seed: tf.Tensor) -> tf.Tensor:
    """``[batch, size]`` bool: True inside any of ``n_bands`` random bands of each row, each
    ``U{0..max_width}`` wide (clipped to ``size``) and placed uniformly where it fits."""
    import tensorflow as tf  # lazy: TensorFlow

    s_width, s_start = tf.unstack(seeds(seed, 2))
    width = uniform([batch, n_bands], s_width, 0, min(max_width, size) + 1, tf.int32)
    room = tf.cast(size - width + 1, tf.float32)  # [batch, n_bands] start positions that fit
    start = tf.cast(tf.floor(uniform([batch, n_bands], s_start, 0.0, 1.0) * room), tf.int32)
    pos = tf.range(size)[None, None, :]  # [1, 1, size]
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
    return tf.reduce_any(inside, axis=1)


def spec_mask(feats: tf.Tensor, dct: np.ndarray, config: AugmentConfig,
              seed: tf.Tensor) -> tf.Tensor:
    """Frequency and time masking of cepstral features (SpecAugment without time warping).

    Frequency masks act on mel channels, where SpecAugment defines them: the features are
    projected back onto the mel channels through the (orthonormal) DCT, the masked channels
    are replaced by their mean over the clip, and the change is projected forward again.  With
    cepstral mean subtraction the mean is zero, so this is SpecAugment's mean fill.  Time
    masks replace whole frames by the clip's mean feature vector.

    Parameters
    ----------
    feats : tf.Tensor [shape=(batch, frames, n_mfcc), dtype=float32]
    dct : np.ndarray [shape=(n_mels, n_mfcc)]
        The DCT of the front end (orthonormal columns), mel channels to cepstra.
    config : AugmentConfig
        ``freq_masks``, ``freq_mask_bands``, ``time_masks``, ``time_mask_frames``.
    seed : tf.Tensor [shape=(2,), integer]

    Returns
    -------
    feats : tf.Tensor [shape=(batch, frames, n_mfcc), dtype=float32]
    """
    import tensorflow as tf  # lazy: TensorFlow

    s_freq, s_time = tf.unstack(seeds(seed, 2))
    batch, frames = tf.shape(feats)[0], int(feats.shape[1])
    dct = tf.constant(dct, tf.float32)  # [n_mels, n_mfcc]
    if config.freq_masks and config.freq_mask_bands:
        mel = tf.einsum("btc,mc->btm", feats, dct)  # [batch, frames, n_mels]
        masked = _band_mask(batch, int(dct.shape[0]), config.freq_masks,
                            config.freq_mask_bands, s_freq)  # [batch, n_mels]
        change = tf.where(masked[:, None, :], tf.reduce_mean(mel, axis=1, keepdims=True) - mel,
                          0.0)
        feats = feats + tf.einsum("btm,mc->btc", change, dct)
    if config.time_masks and config.time_mask_frames:
        masked = _band_mask(batch, frames, config.time_masks, config.time_mask_frames, s_time)
        feats = tf.where(masked[:, :, None], tf.reduce_mean(feats, axis=1, keepdims=True), feats)
    return feats


def silence(
    noise: tf.Tensor, n: int, num_samples: int, seed: tf.Tensor, volume: float
) -> tf.Tensor:
    """``n`` clips of background noise alone, each at a volume drawn from U(0, ``volume``).

    Returns
    -------
    clips : tf.Tensor [shape=(n, num_samples), dtype=float32]
    """
    import tensorflow as tf  # lazy: TensorFlow

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
    import tensorflow as tf  # lazy: TensorFlow

    return tf.function(lambda waves, noise, seed: augment(waves, noise, seed, config, sr),
                       jit_compile=True)
