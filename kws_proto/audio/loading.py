"""Reading audio files into fixed-length float32 waveforms.

soundfile reads WAV/FLAC/OGG; channels are averaged to mono; soxr resamples from any rate; the
result is padded with zeros or cut to exactly ``sr * duration`` samples.  Every failure is an
:class:`~kws_proto.errors.AudioError` naming the file and the cause.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kws_proto.errors import AudioError, ConfigError

CROPS = ("center", "loudest", "start")
#: The level gate of detection (:data:`kws_proto.spot.detect.MIN_DB`, RMS dB full scale): a
#: window quieter than this is never a keyword.
LEVEL_GATE_DB = -50.0
#: The shortest stretch of audio that can hold a spoken word, in seconds.  The shortest words
#: ("six", "eight") last 0.2-0.3 s; the shortest of the 3,000 FSDD digit clips is 0.143 s; below
#: 0.1 s a clip fills fewer than 5 of the front end's 51 frames and is padding otherwise.
MIN_WORD_SECONDS = 0.1


def read_audio(path: str | os.PathLike, sr: int = 16000) -> np.ndarray:
    """Read a whole audio file as mono float32 at ``sr`` Hz.

    Parameters
    ----------
    path : str or PathLike
        A WAV, FLAC or OGG file.
    sr : int > 0
        Target sample rate; the file is resampled with soxr when its own rate differs.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]

    Raises
    ------
    AudioError
        Missing file, a directory, an unreadable / corrupt / non-audio file, zero-length audio or
        non-finite samples.
    """
    if sr <= 0:
        raise ConfigError(f"sr={sr} must be positive")
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"{p}: unreadable or corrupt audio ({e})") from e
    if data.shape[0] == 0:
        raise AudioError(f"{p}: empty audio (zero samples)")
    y = data.mean(axis=1, dtype=np.float32)  # [n, channels] -> [n]
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{p}: audio holds non-finite samples (NaN or Inf)")
    if file_sr != sr:
        y = soxr.resample(y, file_sr, sr, quality="HQ").astype(np.float32, copy=False)
    return y


def power_db(mean_square) -> np.ndarray:
    """A mean square (of samples in [-1, 1]) in dB full scale; digital silence is -200 dB."""
    return 10.0 * np.log10(np.maximum(mean_square, 1e-20))


def word_problem(y: np.ndarray, sr: int) -> str | None:
    """Why ``y [n]`` at ``sr`` Hz cannot be a recording of a spoken word, or None when it can.

    Too short: under :data:`MIN_WORD_SECONDS` of audio.  Silent: its loudest
    :data:`MIN_WORD_SECONDS` is quieter than :data:`LEVEL_GATE_DB` (RMS), so that every window
    the detector could cut from it is below its gate too (a window's mean square is the mean of
    its tenths').  The quietest clips of FSDD and Picovoice measure -49.7 and -48.9 dBFS so.
    """
    n = int(round(MIN_WORD_SECONDS * sr))
    if y.shape[0] < n:
        return (f"too short: {y.shape[0] / sr:.3f} s of audio, less than a word "
                f"({MIN_WORD_SECONDS:g} s)")
    start = loudest_start(y, n, hop=max(1, sr // 100))
    level = float(power_db(np.mean(np.square(y[start:start + n], dtype=np.float64))))
    if level < LEVEL_GATE_DB:
        what = ("digital silence" if level <= -200
                else f"its loudest {MIN_WORD_SECONDS:g} s is at {level:.1f} dBFS")
        return f"silent: {what}, below the detector's level gate ({LEVEL_GATE_DB:g} dBFS)"
    return None


def check_word(y: np.ndarray, sr: int, path) -> np.ndarray:
    """``y`` unchanged, or an :class:`AudioError` naming ``path`` when :func:`word_problem` says
    it cannot be a recording of a word."""
    problem = word_problem(y, sr)
    if problem:
        raise AudioError(f"{path}: {problem}")
    return y


def fix_length(y: np.ndarray, n: int, crop: str = "center", sr: int = 16000) -> np.ndarray:
    """Pad ``y`` with zeros or cut it to exactly ``n`` samples.

    Parameters
    ----------
    y : np.ndarray [shape=(m,)]
    n : int > 0
        Wanted length in samples.
    crop : {"center", "loudest", "start"}
        Which ``n`` samples a longer clip keeps: the middle ones, the window with the most energy
        (found on 10 ms frames), or the first ones.  A shorter clip is centred between zeros for
        "center" and "loudest", and zero-padded at the end for "start".

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
    """
    y = np.asarray(y, dtype=np.float32)
    return window_at(y, crop_start(y, n, crop, sr), n)


def crop_start(y: np.ndarray, n: int, crop: str = "center", sr: int = 16000) -> int:
    """Where :func:`fix_length` starts its ``n`` samples in ``y [m]``: an index into ``y``, negative
    when a shorter clip is centred (``-left``, the zeros before it)."""
    if crop not in CROPS:
        raise ConfigError(f"crop={crop!r} must be one of {CROPS}")
    m = y.shape[0]
    if m <= n:
        return 0 if crop == "start" else -((n - m) // 2)
    if crop == "start":
        return 0
    if crop == "center":
        return (m - n) // 2
    return loudest_start(y, n, hop=max(1, sr // 100))


def window_at(y: np.ndarray, start: int, n: int) -> np.ndarray:
    """``y[start:start + n]`` as float32, zeros where the span leaves ``y`` (``start`` may be
    negative or beyond the end): ``[n]``."""
    out = np.zeros(n, dtype=np.float32)
    a, b = max(0, start), min(y.shape[0], start + n)
    if b > a:
        out[a - start:b - start] = y[a:b]
    return out


def loudest_start(y: np.ndarray, n: int, hop: int = 160) -> int:
    """Start index of the ``n``-sample window of ``y`` with the most energy, on a ``hop`` grid."""
    energy = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])  # [m + 1]
    starts = np.arange(0, y.shape[0] - n + 1, hop)
    if starts[-1] != y.shape[0] - n:
        starts = np.append(starts, y.shape[0] - n)
    window_energy = energy[starts + n] - energy[starts]
    return int(starts[np.argmax(window_energy)])


def load_audio(
    path: str | os.PathLike, sr: int = 16000, duration: float = 1.0, crop: str = "center"
) -> np.ndarray:
    """Load a clip as float32 mono of exactly ``round(sr * duration)`` samples.

    Parameters
    ----------
    path : str or PathLike
        A WAV, FLAC or OGG file at any sample rate and channel count.
    sr : int > 0
        Target sample rate.
    duration : float > 0
        Clip length in seconds.
    crop : {"center", "loudest", "start"}
        How a longer recording is cut (see :func:`fix_length`); "loudest" keeps the second with
        the most energy, which recordings of several seconds with the word inside need.

    Returns
    -------
    y : np.ndarray [shape=(round(sr * duration),), dtype=float32]
    """
    if duration <= 0:
        raise ConfigError(f"duration={duration} must be positive")
    if crop not in CROPS:
        raise ConfigError(f"crop={crop!r} must be one of {CROPS}")
    return fix_length(read_audio(path, sr), int(round(sr * duration)), crop=crop, sr=sr)
