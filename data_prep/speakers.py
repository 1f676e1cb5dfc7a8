"""Synthetic speakers: one eSpeak NG voice setting each, named by a hash of the setting.

A speaker is accent × voice variant × speed × pitch.  Speakers are drawn from a seed so that
accents and variants are used evenly: every (accent, variant) pair is used once, in a seeded
order, before any is used twice (with another speed and pitch).
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np

from data_prep.espeak import Voice
from kws_proto.errors import ConfigError

#: eSpeak NG English accents (language/dialect voices of the bundled data).
ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
    "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)
#: Voice variants of ``espeak-ng-data/voices/!v`` that sound like a human talker (no robots,
#: whispers or croaks).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "Andy", "Annie", "Alicia", "anika", "belinda", "benjamin", "david", "edward", "grandpa",
    "iven", "john", "linda", "michel", "norbert", "paul", "quincy", "rob", "robert", "steph",
    "travis", "aunty", "Alex", "Mike", "klatt", "klatt2", "klatt3",
)
#: Speeds (words per minute) and base pitches a speaker is drawn from.
RATES = tuple(range(120, 231, 10))
PITCHES = tuple(range(25, 76, 5))


def speaker_id(voice) -> str:
    """First 8 hex digits of the SHA-1 of the setting's ``speaker_key`` (eSpeak NG
    ``"accent|variant|rate|pitch"``, Flite ``"flite|voice|pitch|stretch"``).

    Examples
    --------
    >>> len(speaker_id(Voice("en-us", "m3", 175, 50)))
    8
    """
    return hashlib.sha1(voice.speaker_key.encode()).hexdigest()[:8]


def draw_speakers(
    n: int,
    seed: int,
    accents: tuple[str, ...] = ACCENTS,
    variants: tuple[str, ...] = VARIANTS,
) -> list[Voice]:
    """Draw ``n`` distinct speakers.

    Parameters
    ----------
    n : int > 0
        Number of speakers.
    seed : int
        Fixes the draw.
    accents, variants : tuple of str
        The pools to combine.

    Returns
    -------
    voices : list of Voice [length n]
        Distinct settings with distinct :func:`speaker_id`.
    """
    if n <= 0:
        raise ConfigError(f"speakers={n} must be positive")
    capacity = len(accents) * len(variants) * len(RATES) * len(PITCHES)
    if n > capacity:
        raise ConfigError(f"speakers={n} exceeds the {capacity} distinct voice settings")
    rng = np.random.default_rng(seed)
    pairs = list(itertools.product(accents, variants))
    voices: list[Voice] = []
    seen: set[str] = set()
    while len(voices) < n:
        for i in rng.permutation(len(pairs)):
            accent, variant = pairs[i]
            v = Voice(accent, variant, int(rng.choice(RATES)), int(rng.choice(PITCHES)))
            if speaker_id(v) in seen:
                continue
            seen.add(speaker_id(v))
            voices.append(v)
            if len(voices) == n:
                break
    return voices
