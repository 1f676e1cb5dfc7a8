"""The MFCC front end: a librosa reference and a TensorFlow batch path that agrees with it.

:func:`mfcc` computes one clip with librosa and is the definition of the features.
:func:`mfcc_batch` computes a batch with TensorFlow ops only (no ``tf.py_function``), so it runs
eagerly, inside a ``tf.function`` with an unknown batch size, and inside an exported model that
takes raw audio.  Both return ``[frames, n_mfcc]`` per clip (time first).  They agree to within
1e-3 (max abs) on every clip of real speech, noise and tones inside ``[fmin, fmax]``
(``tests/test_features.py``); ``benchmarks/bench_mfcc.py`` measures the speed ratio.
:func:`mfcc_batch` takes the power spectrum with ``tf.signal.rfft`` (``spectrum="fft"``) or, for
graphs whose runtime has no FFT of the front end's length (TFLite's needs a power of two, and
``n_fft=640``), as matrix products with a real DFT matrix (``spectrum="dft"``).

Precision: the TF path takes its spectrum (FFT or DFT) in float32, whose rounding noise sits
about 140 dB below a frame's peak.  With the default ``top_db=80`` floor that noise stays out of
the output, unless a clip has no energy at all inside the mel range (e.g. a pure tone above
``fmax`` in digital silence), where the two paths can differ by a few 1e-3.  With
``top_db=None`` bands down to ``amin`` reach the output, so the spectrum is taken in float64
(slower; experiments/speed.md, "Front end").

librosa and TensorFlow are imported inside the functions that need them, so importing this
module (e.g. for :class:`FeatureConfig` in a command's ``--help``) stays fast.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import warnings
from dataclasses import dataclass

import numpy as np

from kws_proto.audio.loading import CROPS
from kws_proto.errors import ConfigError
from kws_proto.util.typed import from_dict

PAD_MODES = ("constant", "reflect")
#: Bumped whenever the numbers a config produces change; feature caches record it.
FRONTEND_VERSION = 1
NORMALIZE = ("none", "mean", "meanvar")
#: How :func:`mfcc_batch` takes the power spectrum: ``tf.signal.rfft``, or a DFT-matrix product.
SPECTRA = ("fft", "dft")
DITHER_SEED = 0x0D17  # seeds the fixed dither signal (the same samples for every clip)
VAR_FLOOR = 1.0  # "meanvar" divides by at least 1 (cepstral units are dB): flat coefficients stay flat

_INT_FIELDS = ("sample_rate", "n_fft", "n_mels", "n_mfcc")
_FLOAT_FIELDS = ("clip_seconds", "window_ms", "hop_ms", "fmin", "fmax", "amin")


@dataclass(frozen=True)
class FeatureConfig:
    """MFCC front-end parameters (validated on construction, hashable, serialisable).

    The defaults follow the few-shot keyword-spotting protocol of Parnami & Lee, "Few-Shot
    Keyword Spotting With Prototypical Networks" (arXiv 2007.14463), whose published numbers we
    compare with: 16 kHz, 1 s clips, a 40 ms Hann window (640 samples) every 20 ms (320 samples),
    40 MFCC, hence 51 x 40 features per second with centred framing.  Their front end
    (torchaudio) uses ``n_fft`` equal to the window, so ``n_fft=640`` here too, and takes the
    decibel log with an 80 dB floor below each clip's maximum, which is also librosa's
    ``power_to_db`` default (``top_db=80``).  The mel filterbank follows google-research's
    kws_streaming front end: 40 mel bands over 20-7000 Hz (librosa's Slaney mel scale and
    normalisation).

    Parameters
    ----------
    sample_rate : int > 0
        Audio rate in Hz.
    clip_seconds : float > 0
        Clip length; ``num_samples = round(sample_rate * clip_seconds)``.
    window_ms, hop_ms : float > 0
        Analysis window and hop in milliseconds (rounded to whole samples).
    n_fft : int >= window length
        FFT size; a shorter window is centred in it with zeros, as librosa does.
    n_mels : int > 0
        Mel bands.
    n_mfcc : int, 0 < n_mfcc <= n_mels
        Cepstral coefficients kept (DCT type 2, orthonormal).
    fmin, fmax : float, 0 <= fmin < fmax <= sample_rate / 2
        Frequency range of the mel filterbank in Hz.
    crop : {"loudest", "center", "start"}
        How :func:`kws_proto.audio.loading.load_audio` cuts a longer recording to the clip length;
        "loudest" keeps the second with the most energy (the word inside a longer recording).
    pad_mode : {"constant", "reflect"}
        Padding of the signal ends for centred frames (librosa's ``center=True``).
    top_db : float > 0 or None
        Floor of the log-mel spectrogram, in dB below each clip's maximum; None for no floor
        other than ``amin``.
    normalize : {"mean", "none", "meanvar"}
        Per-utterance normalisation of each coefficient over the clip's frames: cepstral mean
        subtraction (the default: removes the recording's level and channel colouring), none,
        or mean and variance normalisation.  The mean measured far better on real speech for
        encoders trained on the built-in corpus (experiments/ablation.md).
    amin : float > 0
        Smallest mel power before the log (``10 * log10(max(amin, S))``).
    dither_db : float > 0 or None
        When set, a fixed white-noise signal (:func:`dither_signal`, the same samples for every
        clip) is added at ``dither_db`` dB below the clip's peak sample before the spectrum.
        Real recordings and the augmented training clips always have a noise floor; digital
        silence — the zeros that pad a recording shorter than the clip, or the empty band above
        a recording's own Nyquist frequency (FSDD is 8 kHz audio) — has none, and with
        ``top_db=80`` sits at a floor no training clip reaches.  Relative to the peak, so it
        does not depend on the recording level.  Augmented training clips are computed without
        it (:mod:`kws_proto.data.pipeline`): their augmentation noise is their floor, and encoders
        trained on dithered clips scored lower on real speech than the same encoders given the
        dither only at test time (experiments/floor.md).  Validation, evaluation,
        enrolment, detection and the exports use it.  None (the default): no dither.
    """

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    window_ms: float = 40.0
    hop_ms: float = 20.0
    n_fft: int = 640
    n_mels: int = 40
    n_mfcc: int = 40
    fmin: float = 20.0
    fmax: float = 7000.0
    crop: str = "loudest"
    pad_mode: str = "constant"
    top_db: float | None = 80.0
    amin: float = 1e-10
    normalize: str = "mean"
    dither_db: float | None = None

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            v = getattr(self, name)
            ok = isinstance(v, (int, np.integer, float)) and not isinstance(v, bool)
            if not ok or float(v) != int(v):
                raise ConfigError(f"FeatureConfig.{name}={v!r} must be an integer")
            object.__setattr__(self, name, int(v))
        optional = tuple(n for n in ("top_db", "dither_db") if getattr(self, n) is not None)
        for name in _FLOAT_FIELDS + optional:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ConfigError(f"FeatureConfig.{name}={v!r} must be a number")
            if not math.isfinite(float(v)):
                raise ConfigError(f"FeatureConfig.{name}={v!r} must be finite")
            object.__setattr__(self, name, float(v))
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"FeatureConfig.{name}={getattr(self, name)!r} {why}")

        for name in ("sample_rate", "clip_seconds", "window_ms", "hop_ms", "n_fft", "n_mels",
                     "n_mfcc", "amin"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        if self.top_db is not None and self.top_db <= 0:
            raise bad("top_db", "must be positive or None")
        if self.dither_db is not None and self.dither_db <= 0:
            raise bad("dither_db", "must be positive (dB below the clip's peak) or None")
        if self.hop_length < 1:
            raise bad("hop_ms", f"is less than one sample at sample_rate={self.sample_rate}")
        if self.win_length < 1:
            raise bad("window_ms", f"is less than one sample at sample_rate={self.sample_rate}")
        if self.win_length > self.n_fft:
            raise bad("n_fft", f"must be >= the window length ({self.win_length} samples "
                               f"= window_ms={self.window_ms} at {self.sample_rate} Hz)")
        if self.n_mfcc > self.n_mels:
            raise bad("n_mfcc", f"must be <= n_mels={self.n_mels}")
        if self.fmin < 0:
            raise bad("fmin", "must be >= 0")
        if self.fmax > self.sample_rate / 2:
            raise bad("fmax", f"must be <= sample_rate / 2 = {self.sample_rate / 2}")
        if self.fmin >= self.fmax:
            raise bad("fmin", f"must be < fmax={self.fmax}")
        if self.normalize not in NORMALIZE:
            raise bad("normalize", f"must be one of {NORMALIZE}")
        if self.crop not in CROPS:
            raise bad("crop", f"must be one of {CROPS}")
        if self.pad_mode not in PAD_MODES:
            raise bad("pad_mode", f"must be one of {PAD_MODES}")
        if self.pad_mode == "reflect" and self.num_samples <= self.n_fft // 2:
            raise bad("pad_mode", f"needs clips longer than n_fft // 2 = {self.n_fft // 2} "
                                  f"samples (clip has {self.num_samples})")

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Samples per clip."""
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.sample_rate * self.window_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000.0))

    @property
    def num_frames(self) -> int:
        """Frames per clip with centred framing (``1 + num_samples // hop`` for even n_fft)."""
        padded = self.num_samples + 2 * (self.n_fft // 2)  # librosa pads n_fft // 2 each side
        return 1 + (padded - self.n_fft) // self.hop_length

    @property
    def shape(self) -> tuple[int, int]:
        """Features of one clip: ``(num_frames, n_mfcc)``."""
        return (self.num_frames, self.n_mfcc)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain ``{field: value}`` (JSON/YAML friendly)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        """Build from a mapping (:func:`kws_proto.util.typed.from_dict`): unknown keys are a
        :class:`ConfigError` naming them, missing ones default."""
        return from_dict(cls, d, "features")

    @property
    def digest(self) -> str:
        """Stable 12-hex-digit hash of the config (sha256 of its sorted JSON); names caches."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@functools.lru_cache(maxsize=16)
def _constants(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``window [win_length]``, ``mel [n_fft // 2 + 1, n_mels]``, ``dct [n_mels, n_mfcc]``."""
    import librosa  # lazy: librosa
    import scipy.fft  # lazy: SciPy

    window = librosa.filters.get_window("hann", config.win_length, fftbins=True)
    with warnings.catch_warnings():  # librosa warns of empty bands; we raise instead
        warnings.simplefilter("ignore", UserWarning)
        mel = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft,
                                  n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
                                  dtype=np.float32)
    if np.any(mel.max(axis=1) == 0):
        raise ConfigError(f"FeatureConfig.n_mels={config.n_mels} is too many for "
                          f"n_fft={config.n_fft} over {config.fmin}-{config.fmax} Hz: "
                          f"some mel bands hold no FFT bin")
    # Row k of the orthonormal DCT-II of the identity is basis vector k: [n_mfcc, n_mels].
    dct = scipy.fft.dct(np.eye(config.n_mels), type=2, norm="ortho", axis=0)[: config.n_mfcc]
    return (window.astype(np.float32), np.ascontiguousarray(mel.T),
            np.ascontiguousarray(dct.T, dtype=np.float32))


def dct_matrix(config: FeatureConfig) -> np.ndarray:
    """The front end's DCT-II, mel channels to cepstra: ``[n_mels, n_mfcc]`` float32 with
    orthonormal columns (``cepstra = log_mel @ dct``; ``cepstra @ dct.T`` projects back)."""
    return _constants(config)[2]


@functools.lru_cache(maxsize=16)
def _dft_matrices(config: FeatureConfig, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``cos, sin [win_length, n_fft // 2 + 1]`` of ``dtype``: the real DFT with the window in.

    ``frames @ cos`` and ``frames @ sin`` are the real and (negated) imaginary parts of the
    ``rfft`` of the windowed frames zero-padded to ``n_fft`` (the window is at the start of the
    FFT frame, as in :func:`mfcc_batch`).
    """
    window = _constants(config)[0].astype(np.float64)  # [win] the float32 window, as rfft gets it
    k = np.arange(config.n_fft // 2 + 1)[None, :]  # [1, bins]
    phase = 2.0 * np.pi * np.arange(config.win_length)[:, None] * k / config.n_fft  # [win, bins]
    return ((window[:, None] * np.cos(phase)).astype(dtype),
            (window[:, None] * np.sin(phase)).astype(dtype))


@functools.lru_cache(maxsize=4)
def dither_signal(n: int) -> np.ndarray:
    """The fixed dither: ``n`` samples of unit-variance white noise from :data:`DITHER_SEED`
    [shape=(n,), float32].  The same for every clip, so features stay deterministic."""
    out = np.random.default_rng(DITHER_SEED).standard_normal(n).astype(np.float32)
    out.flags.writeable = False
    return out


def dither_scale(config: FeatureConfig) -> float:
    """Amplitude of the dither relative to the clip's peak sample (0 without dither)."""
    return 0.0 if config.dither_db is None else 10.0 ** (-config.dither_db / 20.0)


def mfcc(y: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """MFCC of one clip with librosa: the reference definition of the features.

    Optional dither (``dither_db``), power mel spectrogram (Hann window, centred frames, Slaney
    mel), ``power_to_db`` with ``ref=1``, ``amin`` and ``top_db`` of the config, then DCT-II
    (orthonormal), first ``n_mfcc``.

    Parameters
    ----------
    y : np.ndarray [shape=(config.num_samples,)]
        One clip, as :func:`kws_proto.audio.loading.load_audio` returns it.
    config : FeatureConfig

    Returns
    -------
    features : np.ndarray [shape=(config.num_frames, config.n_mfcc), dtype=float32]

    Raises
    ------
    ConfigError
        ``y`` is not one-dimensional of exactly ``config.num_samples`` samples.
    """
    import librosa  # lazy: librosa

    y = np.asarray(y, dtype=np.float32)
    if y.shape != (config.num_samples,):
        raise ConfigError(
            f"mfcc: y has shape {y.shape}, but sample_rate={config.sample_rate} and "
            f"clip_seconds={config.clip_seconds} need ({config.num_samples},); "
            f"cut or pad it with kws_proto.audio.loading.fix_length")
    _constants(config)  # validates the filterbank
    if config.dither_db is not None:
        y = y + np.float32(np.max(np.abs(y)) * dither_scale(config)) * dither_signal(config.num_samples)
    power = librosa.feature.melspectrogram(
        y=y, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        win_length=config.win_length, window="hann", center=True, pad_mode=config.pad_mode,
        power=2.0, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)  # [n_mels, T]
    db = librosa.power_to_db(power, ref=1.0, amin=config.amin, top_db=config.top_db)
    cep = librosa.feature.mfcc(S=db, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho").T  # [T, n_mfcc]
    if config.normalize != "none":
        cep = cep - cep.mean(axis=0, keepdims=True)
        if config.normalize == "meanvar":
            cep = cep / np.maximum(cep.std(axis=0, keepdims=True), VAR_FLOOR)
    return np.ascontiguousarray(cep, dtype=np.float32)


def mfcc_batch(Y, config: FeatureConfig = FeatureConfig(), spectrum: str = "fft"):
    """MFCC of a batch of clips with TensorFlow ops; agrees with :func:`mfcc` clip by clip.

    Graph-safe: no Python callbacks, only the batch dimension may be unknown.  The signal gets
    the optional dither, is padded by ``n_fft // 2`` on each side (librosa's ``center=True``), cut into frames of the
    window length (a window centred in ``n_fft`` has the same power spectrum as one at the
    start, so the FFT zero-pads at the end), Hann-windowed, transformed to a power spectrum,
    multiplied by librosa's mel filterbank, log-scaled in dB with the per-clip ``top_db``
    floor, and multiplied by the orthonormal DCT-II matrix.

    Parameters
    ----------
    Y : tf.Tensor or np.ndarray [shape=(batch, config.num_samples)]
        Clips; any float dtype (cast to float32).
    config : FeatureConfig
    spectrum : {"fft", "dft"}
        How the power spectrum is taken: ``"fft"`` with ``tf.signal.rfft`` (the fast path);
        ``"dft"`` as ``(frames @ cos)**2 + (frames @ sin)**2`` with the real DFT matrices
        ``[win_length, n_fft // 2 + 1]`` (window folded in), MatMul ops only, for runtimes
        without an FFT of length ``n_fft`` (TFLite's needs a power of two).  Both agree with
        :func:`mfcc` to the same tolerance; under TensorFlow on CPU ``"dft"`` is far slower
        (experiments/speed.md), so it is for export only.

    Returns
    -------
    features : tf.Tensor [shape=(batch, config.num_frames, config.n_mfcc), dtype=float32]

    Raises
    ------
    ConfigError
        ``Y`` is not two-dimensional or its static length is not ``config.num_samples``
        (a length known only at run time fails in ``tf.ensure_shape``), or ``spectrum`` is not
        one of :data:`SPECTRA`.
    """
    import tensorflow as tf  # lazy: TensorFlow

    if spectrum not in SPECTRA:
        raise ConfigError(f"mfcc_batch: spectrum={spectrum!r} must be one of {SPECTRA}")
    window, mel_fb, dct = _constants(config)
    if not isinstance(Y, (tf.Tensor, tf.Variable)):
        Y = np.asarray(Y, dtype=np.float32)
    Y = tf.cast(Y, tf.float32)
    n, T, win, hop = config.num_samples, config.num_frames, config.win_length, config.hop_length
    if Y.shape.rank is not None and (Y.shape.rank != 2 or Y.shape[1] not in (None, n)):
        raise ConfigError(
            f"mfcc_batch: Y has shape {Y.shape}, but sample_rate={config.sample_rate} and "
            f"clip_seconds={config.clip_seconds} need (batch, {n})")
    Y = tf.ensure_shape(Y, [None, n])
    if config.dither_db is not None:
        peak = tf.reduce_max(tf.abs(Y), axis=1, keepdims=True)  # [B, 1]
        Y = Y + peak * np.float32(dither_scale(config)) * dither_signal(n)[None, :]  # [B, n]

    half = config.n_fft // 2
    Y = tf.pad(Y, [[0, 0], [half, half]], mode=config.pad_mode.upper())  # [B, n + 2*half]
    left = (config.n_fft - win) // 2  # where librosa puts the window inside n_fft
    Y = Y[:, left : left + (T - 1) * hop + win]  # [B, (T-1)*hop + win]
    # no floor: float32 spectrum rounding would reach the output, so take it in float64
    dtype = tf.float32 if config.top_db is not None else tf.float64
    if spectrum == "fft":
        frames = tf.cast(_windowed_frames(Y, window, T, hop), dtype)  # [B, T, win]
        spec = tf.signal.rfft(frames, fft_length=[config.n_fft])  # [B, T, n_fft//2 + 1]
        power = tf.math.square(tf.math.real(spec)) + tf.math.square(tf.math.imag(spec))
        power = tf.reshape(power, [-1, mel_fb.shape[0]])  # [B*T, n_fft//2 + 1]
    else:
        cos, sin = _dft_matrices(config, dtype.name)  # [win, n_fft//2 + 1] each
        frames = tf.signal.frame(Y, win, hop)  # [B, T, win]
        frames = tf.cast(tf.reshape(frames, [-1, win]), dtype)  # [B*T, win]
        power = tf.math.square(tf.matmul(frames, cos)) + tf.math.square(tf.matmul(frames, sin))
    power = tf.cast(power, tf.float32)  # [B*T, n_fft//2 + 1]
    mel = tf.matmul(power, mel_fb)  # [B*T, n_mels]
    db = tf.math.log(tf.maximum(mel, config.amin)) * np.float32(10.0 / math.log(10.0))
    db = tf.reshape(db, [-1, T, config.n_mels])  # [B, T, n_mels]
    if config.top_db is not None:
        floor = tf.reduce_max(db, axis=[1, 2], keepdims=True) - config.top_db  # [B, 1, 1]
        db = tf.maximum(db, floor)
    cep = tf.matmul(tf.reshape(db, [-1, config.n_mels]), dct)  # [B*T, n_mfcc]
    cep = tf.reshape(cep, [-1, T, config.n_mfcc])  # [B, T, n_mfcc]
    if config.normalize != "none":  # per clip and coefficient, over frames
        cep = cep - tf.reduce_mean(cep, axis=1, keepdims=True)
        if config.normalize == "meanvar":
            std = tf.sqrt(tf.reduce_mean(tf.square(cep), axis=1, keepdims=True))  # [B, 1, n_mfcc]
            cep = cep / tf.maximum(std, VAR_FLOOR)
    return cep


def _windowed_frames(Y, window: np.ndarray, T: int, hop: int):
    """``[B, (T-1)*hop + win] -> [B, T, win]``: frame ``t`` is ``Y[:, t*hop : t*hop + win] * window``.

    When the window is a whole number ``m`` of hops (the default: 640 = 2 x 320), the signal is
    reshaped into hop-long pieces ``[B, T-1+m, hop]`` and frame ``t`` is pieces ``t .. t+m-1``
    side by side, each times its part of the window: one copy, where ``tf.signal.frame`` gathers
    and the window multiply copies again (experiments/speed.md, "Front end").  Other windows go through ``tf.signal.frame``.
    """
    import tensorflow as tf  # lazy: TensorFlow

    win = int(window.shape[0])
    if win % hop:
        return tf.signal.frame(Y, win, hop) * window
    m = win // hop
    pieces = tf.reshape(Y, [-1, T - 1 + m, hop])  # [B, T-1+m, hop]
    return tf.concat([pieces[:, j : j + T] * window[j * hop : (j + 1) * hop] for j in range(m)],
                     axis=-1)


@functools.lru_cache(maxsize=16)
def mfcc_function(config: FeatureConfig = FeatureConfig()):
    """A ``tf.function`` of :func:`mfcc_batch` for ``config``, traced once for any batch size.

    Runs as one graph instead of op by op; the feature cache and the benchmark use it.

    Returns
    -------
    fn : callable
        ``fn(Y [batch, num_samples] float32) -> tf.Tensor [batch, num_frames, n_mfcc]``.
    """
    import tensorflow as tf  # lazy: TensorFlow

    _constants(config)  # raise a ConfigError now rather than at the first call

    def features(Y):
        return mfcc_batch(Y, config)

    spec = tf.TensorSpec([None, config.num_samples], tf.float32)
    return tf.function(features, input_signature=[spec], autograph=False)
