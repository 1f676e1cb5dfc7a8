"""EfficientWord-Net's embedding (EWN): a second frozen, pretrained peer beside the Google one.

EfficientWord-Net (Chidhambararajan et al. 2022, "EfficientWord-Net: An open source hotword
detection engine based on few-shot learning", arXiv 2111.00379) embeds a 1.5 s window of 16 kHz
audio with a ResNet-50 trained with an ArcFace loss on many real words: 64 log mel filterbank
energies (25 ms window, 10 ms hop: 149 frames) -> one unit-length 2048-d vector.  The model,
``resnet_50_arc/slim_93%_accuracy_72.7390%.onnx``, ships inside the ``efficientword-net`` wheel on
PyPI (1.0.5, Apache-2.0); nothing is fetched at run time.  That wheel declares ``pyaudio`` (for
microphones; it needs PortAudio headers to build) among its dependencies, so it is installed
without them: ``make ewn`` (``pip install -e '.[ewn]'``, which brings ``onnxruntime``, then
``pip install --no-deps efficientword-net==1.0.5``).

The package's own code runs it: ``eff_word_net.audio_processing.Resnet50_Arc_loss`` (its front
end, ``eff_word_net.audio_utils.logfbank``, and its ONNX Runtime session on the CPU), one window
per call (the ONNX graph takes a batch of exactly one).  Only the window is cut here instead of by
its ``fixPaddingIssues``, which pads and crops at random positions: a clip shorter than 1.5 s is
centred between zeros, a longer one keeps its loudest 1.5 s (on a 10 ms grid) — both
:func:`kws_proto.audio.loading.fix_length` with ``crop="loudest"``, the project's own cut.  Audio is
fed as float in ``[-1, 1]``, as the package's ``generate_reference`` reads the reference files
(its microphone stream feeds int16 values instead); the embedding depends on the level a little
(on real clips, cosine 0.98 to the same clip 20 dB quieter, 0.88 to it times 32768).

Its detector scores a window by ``(cos + 1) / 2`` against the references (threshold 0.7 in its
README); on unit vectors the squared Euclidean distance the package compares, ``2 - 2 cos``,
orders neighbours the same way.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path

import numpy as np

from kws_proto.audio.features import FeatureConfig
from kws_proto.audio.loading import fix_length
from kws_proto.data.cache import _cached, _digest
from kws_proto.errors import ConfigError, KwsError
from kws_proto.util.provenance import file_sha256

SAMPLE_RATE = 16000
WINDOW_SECONDS = 1.5  # Resnet50_Arc_loss.window_length
WINDOW = int(WINDOW_SECONDS * SAMPLE_RATE)  # 24,000 samples a window
DIM = 2048
EWN_VERSION = 1  # bump when the embedding of a clip changes (keys the crop table's cache)
PACKAGE = "eff_word_net"
DISTRIBUTION = "efficientword-net"
MODEL_FILE = "resnet_50_arc/slim_93%_accuracy_72.7390%.onnx"
INSTALL_HINT = ("make ewn (or: pip install -e '.[ewn]' && "
                "pip install --no-deps efficientword-net==1.0.5)")


class EWNUnavailableError(KwsError, ImportError):
    """EfficientWord-Net (the ``efficientword-net`` wheel and ``onnxruntime``) is not installed."""


def model_file(package: str = PACKAGE) -> Path:
    """The ONNX file of the installed wheel; :class:`EWNUnavailableError` without it.

    ``package`` is the import name looked for (a test names one that does not exist)."""
    spec = importlib.util.find_spec(package)  # locate only: nothing of the package is imported
    if spec is None or spec.origin is None:
        raise EWNUnavailableError(
            f"EfficientWord-Net's embedding needs the {DISTRIBUTION} wheel (it ships the ONNX "
            f"model) and onnxruntime: run `{INSTALL_HINT}` in the project folder")
    f = Path(spec.origin).parent / "models" / MODEL_FILE
    if not f.is_file():
        raise EWNUnavailableError(f"{f}: the installed {DISTRIBUTION} lacks its model; "
                                  f"reinstall it with `{INSTALL_HINT}`")
    return f


@functools.lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime: float) -> str:
    return file_sha256(path)  # 100 MB: once per process and file version


def model_info() -> dict:
    """Where the model comes from: distribution, version, licence, path and sha256 of the file."""
    f = model_file()
    try:
        meta = metadata(DISTRIBUTION)
        version, text = meta["Version"], meta.get("License") or ""
        licence = "Apache-2.0" if "Apache License" in text and "2.0" in text else text.split("\n")[0]
    except PackageNotFoundError:  # a source checkout on sys.path rather than an installed wheel
        version, licence = None, None
    st = f.stat()
    return {"distribution": DISTRIBUTION, "version": version, "license": licence,
            "model_file": str(f), "sha256": _sha256(str(f), st.st_size, st.st_mtime)}


def to_window(audio: np.ndarray) -> np.ndarray:
    """``audio [n, samples]`` cut to the model's window, ``[n, 24000]`` float32: a shorter clip
    centred between zeros, a longer one its loudest 1.5 s (:func:`~kws_proto.audio.loading.fix_length`)."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be [n, samples], got shape {audio.shape}")
    if audio.shape[1] == WINDOW:
        return audio
    return np.stack([fix_length(row, WINDOW, crop="loudest", sr=SAMPLE_RATE) for row in audio]
                    ) if len(audio) else np.zeros((0, WINDOW), np.float32)


_SHARED: dict[int, object] = {}


def shared_model():
    """The package's ``Resnet50_Arc_loss``, one per process (its session is opened once)."""
    key = os.getpid()
    if key not in _SHARED:
        model_file()
        try:
            from eff_word_net.audio_processing import Resnet50_Arc_loss  # lazy: onnxruntime, 100 MB model
        except ImportError as e:
            raise EWNUnavailableError(f"EfficientWord-Net cannot be imported ({e}); run "
                                      f"`{INSTALL_HINT}`") from e
        _SHARED[key] = Resnet50_Arc_loss()
    return _SHARED[key]


def ewn_embed_clips(audio: np.ndarray) -> np.ndarray:
    """EfficientWord-Net embedding of each clip: ``audio [n, samples]`` float32 16 kHz -> ``[n, 2048]``.

    Each clip is cut to the 1.5 s window (:func:`to_window`) and embedded by the package's own
    front end and ONNX session, one window at a time.  Raises :class:`EWNUnavailableError`
    without the wheel."""
    windows = to_window(audio)
    if not len(windows):
        return np.zeros((0, DIM), np.float32)
    model = shared_model()
    return np.concatenate([model.audioToVector(w) for w in windows]).astype(np.float32)


def crop_table(manifest, config=None, cache_dir=None, progress: bool = True,
               batch_size: int = 64, rows=None, memo: dict | None = None) -> np.ndarray:
    """EWN of every clip's fixed-length crop, built once into the dataset's cache.

    The clips are read as :func:`~kws_proto.data.cache.waveform_cache` reads them (``config``'s
    sample rate, length and crop), cut to the 1.5 s window (:func:`to_window`) and cached in
    ``DIR/.cache/ewn-<digest>.npy``, keyed by the sample rate, clip length, crop, the model's
    sha256 and :data:`EWN_VERSION`.  The scored peer of ``kws-proto eval ewn``.

    Parameters
    ----------
    manifest : Manifest
    config : FeatureConfig or None
        ``FeatureConfig()`` when None (16 kHz, 1 s, the loudest crop: centred in the window);
        its sample rate must be :data:`SAMPLE_RATE`.
    cache_dir : path or None
        ``manifest.root / ".cache"`` when None.
    progress : bool
    batch_size : int > 0
        Clips read per step.
    rows, memo : optional
        The manifest rows needed and the caller's dict of rows computed before: with no cache
        on disk, fewer than half the manifest are computed alone and not cached
        (:func:`kws_proto.data.cache._cached`); the other rows are zero.

    Returns
    -------
    table : np.memmap [shape=(len(manifest), 2048), dtype=float32]
        Read-only, row ``i`` = manifest row ``i``.
    """
    config = FeatureConfig() if config is None else config
    if config.sample_rate != SAMPLE_RATE:
        raise ConfigError(f"EfficientWord-Net needs {SAMPLE_RATE} Hz, not {config.sample_rate}")
    key = {"sample_rate": config.sample_rate, "clip_seconds": config.clip_seconds,
           "crop": config.crop, "model": model_info()["sha256"], "ewn_version": EWN_VERSION}
    return _cached(manifest, config, cache_dir, "ewn", _digest(key), key, (DIM,), "float32",
                   ewn_embed_clips, progress, batch_size, rows, memo)
