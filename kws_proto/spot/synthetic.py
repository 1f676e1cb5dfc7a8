"""Clips of a text spoken by the built-in voices: eSpeak NG speakers of :mod:`data_prep.speakers`.

:func:`say` speaks a text (or eSpeak NG phonemes in ``[[...]]``) with ``voices`` voice settings
drawn by :func:`data_prep.speakers.draw_speakers` (accent x variant x speed x pitch, the
speakers of the built-in corpus), each as :mod:`data_prep.synth` makes a corpus clip: resampled
to the front end's rate, silence trimmed, re-spoken faster when longer than the clip
(:func:`data_prep.synth.spoken`).  The word is then scaled to a peak of ``PEAK_DB`` dBFS and put
between ``PAD_SECONDS`` of silence on each side, a recording of it, so that the front end's crop
and the enrolment views cut it as they cut a recorded clip.

eSpeak NG runs in this process; its output is a few samples longer or shorter depending on what
it said before (:mod:`data_prep.espeak`), so two enrolments of the same text differ slightly.

A text must be words: letters (Latin script), digits, spaces, apostrophes and hyphens; an
empty text, other characters, a text eSpeak NG finds nothing to say in, and one that no voice
can say within the clip length are refused with a :class:`~kws_proto.errors.ConfigError`.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np

from data_prep.espeak import Voice, get_synthesizer
from data_prep.speakers import draw_speakers, speaker_id
from kws_proto.errors import ConfigError

PEAK_DB = -6.0
PAD_SECONDS = 0.5
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PUNCTUATION_OK = " '-"


def keyword_text(name: str) -> str:
    """What a keyword's name says: digits spelt (FSDD's ``"7"`` is ``"seven"``), ``_`` a space."""
    name = str(name).strip()
    if name.isdigit():
        return " ".join(DIGITS[int(c)] for c in name)
    return name.replace("_", " ")


def check_text(text) -> str:
    """``text`` stripped, or :class:`ConfigError` naming what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"keyword text {text!r} is empty: give the words to synthesise")
    text = " ".join(text.split())
    for ch in text:
        latin = ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN")
        if not (latin or ch.isdigit() or ch in PUNCTUATION_OK):
            raise ConfigError(f"keyword text {text!r}: the synthesiser cannot say {ch!r}; give "
                              "words in Latin letters and digits (spaces, ' and - allowed)")
    return text


def voice_settings(n: int, seed: int = 0):
    """The first ``n`` built-in speakers of ``seed`` (:func:`data_prep.speakers.draw_speakers`)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"voices={n!r} must be a positive number of voice settings")
    return draw_speakers(int(n), seed=seed)


def say(text: str, voices, sr: int = 16000, max_seconds: float = 1.0, seed: int = 0):
    """``text`` spoken by each of ``voices`` (:class:`data_prep.espeak.Voice` settings).

    Returns
    -------
    clips : list of (str, np.ndarray [shape=(m,), dtype=float32])
        A name (``espeak:SPEAKERID:TEXT``) and the recording, for every voice that could say it
        within ``max_seconds`` (at most twice as fast as its setting).

    Raises
    ------
    ConfigError
        No voice can say it (the first voice's reason is given).
    """
    return list(_say(text, tuple(voices), int(sr), float(max_seconds), int(seed)))


@lru_cache(maxsize=64)
def _say(text, voices, sr, max_seconds, seed):
    from data_prep.synth import spoken  # lazy: the corpus builder, 0.1 s, off `--help`

    synth = get_synthesizer()
    max_len, pad = int(round(max_seconds * sr)), int(round(PAD_SECONDS * sr))
    out, reasons = [], []
    for j, voice in enumerate(voices):
        rng = np.random.default_rng([seed, j, 0x7E47])
        y, _ = spoken(synth, text, voice, sr, max_len, seed=int(rng.integers(2**31)))
        if isinstance(y, str):
            reasons.append(y)
            continue
        y = y * (10 ** (PEAK_DB / 20) / max(float(np.max(np.abs(y))), 1e-6))
        out.append((f"espeak:{speaker_id(voice)}:{text}",
                    np.pad(y.astype(np.float32), (pad, pad))))
    if not out:
        raise ConfigError(f"the synthesiser cannot say {text!r} within {max_seconds:g} s with any "
                          f"of {len(voices)} voices ({reasons[0] if reasons else 'no voices'})")
    return tuple(out)


def phonemes(text: str) -> str:
    """eSpeak NG's phonemes of ``text`` in US English (ASCII mnemonics); :class:`ConfigError`
    when it finds nothing to say."""
    ph = get_synthesizer().phonemes(text, Voice("en-us", "m3"))
    if not ph.strip("_ "):
        raise ConfigError(f"keyword text {text!r}: the synthesiser finds nothing to say in it")
    return ph
