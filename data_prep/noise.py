"""Generated background-noise recordings for ``_background_noise_/``.

Speech Commands ships six long noise recordings that training mixes into clips.  The built-in
corpus makes its own: white, pink (1/f) and brown (1/f²) noise shaped in the frequency domain,
mains hum (50 or 60 Hz with harmonics over faint noise) and babble —
several streams of eSpeak NG talkers reading function words at once (no corpus or test keyword).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soxr

from data_prep.espeak import get_synthesizer
from data_prep.speakers import draw_speakers
from data_prep.wav import write_wav
from kws_proto.errors import ConfigError
from kws_proto.util.atomic import atomic_path

#: Function words the babble talkers read: none is a corpus word or a test keyword.
BABBLE_WORDS = (
    "the and of in is that was he with as his they at be this have from or had by but some what "
    "there we can out other were all your when use word how said an each she which do their time "
    "if will way about many then them would like so these her long make thing see him has look "
    "more day could come did my sound most people over"
).split()


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as ``1 / f**exponent``, RMS 1.

    Parameters
    ----------
    n : int > 0
        Length in samples.
    exponent : float
        0 white, 1 pink, 2 brown.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float64]
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))  # [n // 2 + 1]
    f = np.arange(spectrum.shape[0], dtype=np.float64)
    f[0] = 1.0  # keep DC finite; it is removed below
    spectrum *= f ** (-exponent / 2.0)
    spectrum[0] = 0.0
    y = np.fft.irfft(spectrum, n)  # [n]
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def hum(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: a 50 or 60 Hz fundamental and odd-leaning harmonics over faint pink noise."""
    t = np.arange(n) / sr
    f0 = float(rng.choice([50.0, 60.0]))
    y = np.zeros(n)
    for k, amp in enumerate((1.0, 0.5, 0.6, 0.2, 0.3, 0.1), start=1):
        y += amp * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    y /= np.sqrt(np.mean(y**2))
    return y + 0.1 * colored_noise(n, 1.0, rng)


def babble(n: int, sr: int, rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    """``talkers`` overlapping streams of function words synthesised by eSpeak NG, RMS 1."""
    synth = get_synthesizer()
    voices = draw_speakers(talkers, seed=int(rng.integers(2**31)))
    y = np.zeros(n)
    for voice in voices:
        stream: list[np.ndarray] = []
        have = 0
        while have < n:
            text = " ".join(rng.choice(BABBLE_WORDS, size=12)) + "."
            pcm = synth.synthesize(text, voice, seed=int(rng.integers(2**31)))
            part = soxr.resample(pcm.astype(np.float32) / 32768.0, synth.sample_rate, sr)
            stream.append(part)
            have += part.shape[0]
        s = np.concatenate(stream)
        start = int(rng.integers(0, s.shape[0] - n + 1))
        y += s[start : start + n] / (np.sqrt(np.mean(s**2)) + 1e-12)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def write_noises(
    out_dir: str | os.PathLike, seed: int, sr: int = 16000, seconds: float = 30.0, with_babble: bool = True
) -> list[Path]:
    """Write the generated recordings as 16-bit WAV files into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Usually ``DIR/_background_noise_`` (created).
    seed : int
        Fixes every recording.
    sr : int
        Sample rate.
    seconds : float > 0
        Length of each recording.
    with_babble : bool
        Write ``babble.wav`` too (needs eSpeak NG).

    Returns
    -------
    paths : list of Path
    """
    if seconds <= 0:
        raise ConfigError(f"noise seconds={seconds} must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = int(round(sr * seconds))
    rng = np.random.default_rng(seed)
    noises = {
        "white_noise": colored_noise(n, 0.0, rng),
        "pink_noise": colored_noise(n, 1.0, rng),
        "brown_noise": colored_noise(n, 2.0, rng),
        "hum": hum(n, sr, rng),
    }
    if with_babble:
        noises["babble"] = babble(n, sr, rng)
    paths = []
    for name, y in noises.items():
        y = 0.25 * y  # RMS 0.25
        y *= min(1.0, 0.99 / np.max(np.abs(y)))  # peaks below full scale
        path = out / f"{name}.wav"
        with atomic_path(path) as tmp:
            write_wav(tmp, y, sr)
        paths.append(path)
    return paths
