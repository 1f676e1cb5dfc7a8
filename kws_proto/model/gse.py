"""The Google speech embedding (GSE): a frozen, pretrained peer for the project's encoders.

The speech embedding of Lin et al. 2020 ("Training keyword spotters with limited and
synthesized speech data", arXiv 2002.01322) is the frozen backbone of openWakeWord.  Its two
TensorFlow Lite files, the mel front end ``melspectrogram.tflite`` and the embedding network
``embedding_model.tflite``, ship inside the ``pyopen-wakeword`` wheel on PyPI; the optional
extra ``gse`` installs it (``pip install -e '.[gse]'``).  Nothing is fetched at run time: the
files are read from the installed wheel and run by a TFLite interpreter, ``backend``'s:
``"lite"``, LiteRT's (``ai_edge_litert``, the ``lite`` extra; no TensorFlow is imported), or
``"tf"``, ``tf.lite.Interpreter`` (also what ``"lite"`` falls back on without LiteRT).  The two
give the same embeddings to float32 rounding (their kernels round alike but not bit for bit).
The spotter picks the backend as it does for a trained run
(:func:`kws_proto.spot.backends.resolve_backend`); the evaluation tables keep ``"tf"``.

The use is openWakeWord's own (``openwakeword.utils.AudioFeatures`` and
``pyopen_wakeword.OpenWakeWordFeatures``):

* audio is 16 kHz mono in the int16 range (float ``[-1, 1]`` times 32768, rounded, clipped);
* the mel model turns ``s`` samples into ``(s - 640) // 160 + 1`` frames of 32 mel bands
  (25 ms window, 10 ms hop), transformed ``x / 10 + 2`` before the embedding; its log-mel is
  floored 80 dB below the maximum of its input, so it runs on one clip at a time (as
  ``embed_clips`` upstream; the streaming detectors run it on 110 ms chunks, whose floors
  differ from a whole clip's);
* every window of 76 frames (775 ms of frames, 12,640 samples), one every 8 frames (80 ms),
  becomes one 96-d embedding; a trailing part shorter than a window is dropped, as upstream.

A clip's embedding (:func:`gse_embed_clips`) is the element-wise maximum over the 96-d outputs
of its windows; a clip shorter than one window is zero-padded on both sides (centred, as
:func:`kws_proto.audio.loading.fix_length` pads) to one window.  The project's 1 s clips give 3 windows.

Licence: the model files come from ``pyopen-wakeword`` 1.1.0, whose wheel metadata and
``licenses/LICENSE`` say Apache-2.0; Google published the speech embedding under Apache-2.0
(openWakeWord's README); openWakeWord's own wake-word heads (``alexa.tflite`` and the like, also
in the wheel) are CC BY-NC-SA 4.0 there and are not used here.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import warnings
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path

import numpy as np

from kws_proto.audio.features import FeatureConfig
from kws_proto.data.cache import _cached, _digest
from kws_proto.errors import ConfigError, KwsError
from kws_proto.util.provenance import file_sha256

SAMPLE_RATE = 16000
N_MELS = 32
WINDOW_FRAMES = 76  # mel frames per embedding window (775 ms)
STEP_FRAMES = 8  # frames between windows (80 ms)
DIM = 96
MEL_WIN = 640  # samples the mel model needs for its first frame
MEL_HOP = 160  # samples per further frame (10 ms)
MIN_SAMPLES = MEL_WIN + (WINDOW_FRAMES - 1) * MEL_HOP  # 12,640: one window
PCM_SCALE = 32768.0  # float [-1, 1] -> int16 range (soundfile reads int16 as int / 32768)
BACKENDS = ("tf", "lite")  # the interpreters that run the two files
GSE_VERSION = 1  # bump when the embedding of a clip changes (keys the crop table's cache)
PACKAGE = "pyopen_wakeword"
DISTRIBUTION = "pyopen-wakeword"
MODEL_FILES = ("melspectrogram.tflite", "embedding_model.tflite")
INSTALL_HINT = "pip install -e '.[gse]'"


class GSEUnavailableError(KwsError, ImportError):
    """The ``gse`` extra (the ``pyopen-wakeword`` wheel with the model files) is not installed."""


def model_dir() -> Path:
    """The folder of the installed wheel's TFLite files; :class:`GSEUnavailableError` without it."""
    spec = importlib.util.find_spec(PACKAGE)  # locate only: the package's C library is not loaded
    if spec is None or spec.origin is None:
        raise GSEUnavailableError(
            f"the Google speech embedding needs the optional extra 'gse' ({DISTRIBUTION}, which "
            f"ships its TFLite files): run `{INSTALL_HINT}` in the project folder")
    d = Path(spec.origin).parent / "models"
    missing = [f for f in MODEL_FILES if not (d / f).is_file()]
    if missing:
        raise GSEUnavailableError(f"{d}: the installed {DISTRIBUTION} lacks {missing}; "
                                  f"reinstall it with `{INSTALL_HINT}`")
    return d


def model_info() -> dict:
    """Where the model files come from: distribution, version, licence, path and sha256 of each."""
    d = model_dir()
    try:
        meta = metadata(DISTRIBUTION)
        version, licence = meta["Version"], meta.get("License") or meta.get("License-Expression")
    except PackageNotFoundError:  # a source checkout on sys.path rather than an installed wheel
        version, licence = None, None
    files = {f: file_sha256(d / f) for f in MODEL_FILES}
    return {"distribution": DISTRIBUTION, "version": version, "license": licence,
            "model_dir": str(d), "sha256": files}


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in ``[-1, 1]`` as the int16 sample values openWakeWord feeds (float32 array)."""
    return np.clip(np.round(np.asarray(audio, np.float32) * PCM_SCALE), -32768, 32767).astype(np.float32)


def pad_to_window(audio: np.ndarray) -> np.ndarray:
    """``audio [n, samples]`` zero-padded, centred, to at least :data:`MIN_SAMPLES` samples."""
    audio = np.asarray(audio, np.float32)
    short = MIN_SAMPLES - audio.shape[-1]
    if short <= 0:
        return audio
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(short // 2, short - short // 2)])


def n_windows(n_samples: int) -> int:
    """775 ms windows of a clip of ``n_samples`` (after padding to one window)."""
    frames = (max(n_samples, MIN_SAMPLES) - MEL_WIN) // MEL_HOP + 1
    return (frames - WINDOW_FRAMES) // STEP_FRAMES + 1


def interpreter_class(backend: str = "tf"):
    """``(Interpreter, name)``: the TFLite interpreter class ``backend`` names and which one it
    is (``"lite"``: LiteRT's when ``ai_edge_litert`` is installed, else TensorFlow's; ``"tf"``:
    ``tf.lite.Interpreter``)."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} must be one of {', '.join(BACKENDS)}")
    if backend == "lite":
        try:
            from ai_edge_litert.interpreter import Interpreter  # lazy: optional extra `lite`

            return Interpreter, "lite"
        except ImportError:
            pass  # TensorFlow's interpreter runs the same files
    import tensorflow as tf  # lazy: TensorFlow

    return tf.lite.Interpreter, "tf"


class SpeechEmbedding:
    """The two TFLite models of the installed wheel, run by ``backend``'s interpreter.

    Parameters
    ----------
    num_threads : int or None
        Interpreter threads (None: TensorFlow Lite's default).
    backend : {"tf", "lite"}
        ``"tf"``: ``tf.lite.Interpreter``; ``"lite"``: LiteRT's, without TensorFlow (TensorFlow's
        when ``ai_edge_litert`` is not installed).  :attr:`backend` says which one runs.
    """

    def __init__(self, num_threads: int | None = None, backend: str = "tf"):
        d = model_dir()
        interpreter, self.backend = interpreter_class(backend)
        with warnings.catch_warnings():  # tf.lite.Interpreter warns it moves to ai_edge_litert
            warnings.simplefilter("ignore")
            self._mel = interpreter(model_path=str(d / MODEL_FILES[0]), num_threads=num_threads)
            self._emb = interpreter(model_path=str(d / MODEL_FILES[1]), num_threads=num_threads)
        self._mel_shape: tuple[int, ...] | None = None
        self._emb_shape: tuple[int, ...] | None = None
        self._last: tuple | None = None  # (key of the last audio, its windows): remember_windows

    @staticmethod
    def _run(it, x: np.ndarray, shape: tuple | None) -> tuple[np.ndarray, tuple]:
        if shape != x.shape:
            it.resize_tensor_input(it.get_input_details()[0]["index"], list(x.shape), strict=False)
            it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x, np.float32))
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"]).copy(), x.shape

    def melspectrogram(self, pcm: np.ndarray) -> np.ndarray:
        """``pcm [n, samples]`` (int16 range, ``samples >= 640``) -> ``[n, frames, 32]``, ``x / 10 + 2``.

        One clip at a time: the model floors its log-mel at 80 dB below the maximum of its whole
        input tensor, so a batch of clips would share one floor (openWakeWord's ``embed_clips``
        also runs the mel model clip by clip)."""
        pcm = np.asarray(pcm, np.float32)
        out = []
        for row in pcm:
            mel, self._mel_shape = self._run(self._mel, row[None], self._mel_shape)
            out.append(mel[0, 0])  # [1, 1, frames, 32] -> [frames, 32]
        return np.stack(out) / 10 + 2

    def embed_mels(self, mels: np.ndarray) -> np.ndarray:
        """``mels [n, frames >= 76, 32]`` -> ``[n, windows, 96]``: a window every 8 frames."""
        n, frames, _ = mels.shape
        starts = range(0, frames - WINDOW_FRAMES + 1, STEP_FRAMES)
        windows = np.stack([mels[:, s : s + WINDOW_FRAMES] for s in starts], axis=1)  # [n, w, 76, 32]
        flat = windows.reshape(-1, WINDOW_FRAMES, N_MELS, 1)
        out, self._emb_shape = self._run(self._emb, flat, self._emb_shape)
        return out.reshape(n, len(starts), DIM)

    def window_embeddings(self, audio: np.ndarray) -> np.ndarray:
        """``audio [n, samples]`` float in ``[-1, 1]`` at 16 kHz -> ``[n, windows, 96]``."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 2:
            raise ValueError(f"audio must be [n, samples], got shape {audio.shape}")
        if not _REMEMBER:
            return self.embed_mels(self.melspectrogram(to_pcm16(pad_to_window(audio))))
        key = (audio.shape, hashlib.sha1(np.ascontiguousarray(audio).tobytes()).digest())
        if self._last is None or self._last[0] != key:
            self._last = key, self.embed_mels(self.melspectrogram(to_pcm16(pad_to_window(audio))))
        return self._last[1].copy()

    def embed_clips(self, audio: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``audio [n, samples]`` -> ``[n, 96]``: the maximum over each clip's windows."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 2:
            raise ValueError(f"audio must be [n, samples], got shape {audio.shape}")
        out = [self.window_embeddings(audio[i : i + batch_size]).max(axis=1)
               for i in range(0, len(audio), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, DIM), np.float32)


_SHARED: dict[tuple[int, str], SpeechEmbedding] = {}
_REMEMBER: list[bool] = []  # non-empty inside remember_windows()


@contextlib.contextmanager
def remember_windows():
    """Within the block, each :class:`SpeechEmbedding` keeps the windows of the last audio it
    embedded and hands out copies when asked for the same audio again: the fused ``default``
    asks twice for every batch (``gse`` and ``gse-head``).  Outside, nothing is kept."""
    _REMEMBER.append(True)
    try:
        yield
    finally:
        _REMEMBER.pop()
        if not _REMEMBER:
            for model in _SHARED.values():
                model._last = None


def shared_model(backend: str = "tf") -> SpeechEmbedding:
    """One :class:`SpeechEmbedding` per process and backend (interpreters are not thread-safe:
    one per pid)."""
    key = (os.getpid(), backend)
    if key not in _SHARED:
        _SHARED[key] = SpeechEmbedding(backend=backend)
    return _SHARED[key]


def gse_embed_clips(audio: np.ndarray, batch_size: int = 64, backend: str = "tf") -> np.ndarray:
    """Google speech embedding of each clip: ``audio [n, samples]`` float32 16 kHz -> ``[n, 96]``.

    The element-wise maximum over the 96-d outputs of the clip's 775 ms windows (one every
    80 ms); a clip shorter than one window (12,640 samples) is zero-padded, centred.
    ``backend``: the interpreter (:class:`SpeechEmbedding`).  Raises
    :class:`GSEUnavailableError` when the ``gse`` extra is not installed.
    """
    return shared_model(backend).embed_clips(audio, batch_size=batch_size)


def crop_key(config=None) -> tuple[FeatureConfig, dict]:
    """``(config, key)``: ``config`` (``FeatureConfig()`` when None; its sample rate must be
    :data:`SAMPLE_RATE`) and what keys a cache of the speech embedding's outputs of its crops:
    sample rate, clip length, crop, the model files' sha256 and :data:`GSE_VERSION`."""
    config = FeatureConfig() if config is None else config
    if config.sample_rate != SAMPLE_RATE:
        raise ConfigError(f"the speech embedding needs {SAMPLE_RATE} Hz, not {config.sample_rate}")
    return config, {"sample_rate": config.sample_rate, "clip_seconds": config.clip_seconds,
                    "crop": config.crop, "models": model_info()["sha256"], "gse_version": GSE_VERSION}


def crop_table(manifest, config=None, cache_dir=None, progress: bool = True,
               batch_size: int = 64, rows=None, memo: dict | None = None) -> np.ndarray:
    """GSE of every clip's fixed-length crop, built once into the dataset's cache.

    The clips are read as :func:`~kws_proto.data.cache.waveform_cache` reads them (``config``'s
    sample rate, length and crop) and cached like it, in ``DIR/.cache/gse-<digest>.npy``, keyed
    by the sample rate, clip length, crop, the model files' sha256 and :data:`GSE_VERSION`.
    The scored peer of ``kws-proto eval gse``.

    Parameters
    ----------
    manifest : Manifest
    config : FeatureConfig or None
        ``FeatureConfig()`` when None (16 kHz, 1 s, the loudest crop); its sample rate must be
        :data:`SAMPLE_RATE`.
    cache_dir : path or None
        ``manifest.root / ".cache"`` when None.
    progress : bool
    batch_size : int > 0
    rows, memo : optional
        The manifest rows needed and the caller's dict of rows computed before: with no cache
        on disk, fewer than half the manifest are computed alone and not cached
        (:func:`kws_proto.data.cache._cached`); the other rows are zero.

    Returns
    -------
    table : np.memmap [shape=(len(manifest), 96), dtype=float32]
        Read-only, row ``i`` = manifest row ``i``.

    Raises
    ------
    GSEUnavailableError
        Without the ``gse`` extra.
    ConfigError
        A sample rate other than 16 kHz.
    """
    config, key = crop_key(config)
    return _cached(manifest, config, cache_dir, "gse", _digest(key), key, (DIM,), "float32",
                   gse_embed_clips, progress, batch_size, rows, memo)
