"""Confusable negatives: words that sound like a keyword, one phoneme away from it.

eSpeak NG gives the keyword's phonemes (:func:`kws_proto.spot.synthetic.phonemes`, ASCII
mnemonics such as ``h'eI dZ'A@vIs`` for "hey jarvis").  :func:`phoneme_tokens` splits them into
phonemes (longest match over :data:`CONSONANTS` and :data:`VOWELS`; stress marks, pauses and
spaces are kept and never edited), and :func:`confusables` makes every string one edit away:

- a consonant replaced by one of its neighbours (voicing or place: ``p`` -> ``b``, ``t``;
  ``s`` -> ``z``, ``S``, ``T``; ...), a vowel by a neighbouring vowel (``I`` -> ``i:``, ``E``;
  ``eI`` -> ``E``, ``aI``, ``i:``; ...) (:data:`NEIGHBOURS`);
- a consonant deleted (vowels are kept, so the syllables stay).

A seeded pick of ``n`` of them, each different from the keyword's own phoneme string, is spoken
by the built-in voices with eSpeak NG's phoneme input (``[[...]]``) by :func:`confusable_clips`.
:meth:`KeywordSpotter.enroll_text <kws_proto.spot.spotter.KeywordSpotter.enroll_text>` (and
``kws-proto enroll --confusables N``) uses them as negatives: the threshold is capped at the 5%
quantile of their distances to the prototype (:func:`kws_proto.spot.decision.calibrate_threshold`).
Measured in experiments/spotting.md: off by default.
"""

from __future__ import annotations

import numpy as np

from kws_proto.errors import ConfigError
from kws_proto.spot.synthetic import check_text, phonemes, say, voice_settings

CONSONANTS = ("tS", "dZ", "p", "b", "t", "d", "k", "g", "f", "v", "T", "D", "s", "z", "S", "Z",
              "h", "m", "n", "N", "l", "r", "w", "j")
VOWELS = ("aI@", "aU@", "a#", "A:", "A@", "aa", "aI", "aU", "@L", "@2", "@5", "3:", "e@", "eI",
          "E2", "i:", "i@", "I2", "I#", "O:", "O@", "OI", "o@", "oU", "u:", "U@", "@", "3", "a",
          "e", "E", "i", "I", "0", "O", "u", "U", "V")
#: What each phoneme may become: near it in voicing, place or vowel quality.
NEIGHBOURS = {
    "p": ("b", "t"), "b": ("p", "d"), "t": ("d", "k", "p"), "d": ("t", "g", "b"),
    "k": ("g", "t"), "g": ("k", "d"), "f": ("v", "T", "s"), "v": ("f", "b"), "T": ("f", "s"),
    "D": ("d", "v", "z"), "s": ("z", "S", "T"), "z": ("s", "Z"), "S": ("s", "tS"),
    "Z": ("z", "dZ"), "tS": ("S", "dZ", "t"), "dZ": ("tS", "Z", "d"), "m": ("n", "b"),
    "n": ("m", "N", "d"), "N": ("n",), "l": ("r", "w"), "r": ("l", "w"), "w": ("r", "v"),
    "h": ("f",), "j": ("w",),
    "i:": ("I", "eI"), "I": ("i:", "E"), "I2": ("i:", "E"), "i": ("I", "eI"), "E": ("I", "a"),
    "e": ("I", "a"), "a": ("E", "V", "A:"), "aa": ("a", "A:"), "a#": ("E", "V"),
    "A:": ("a", "O:"), "A@": ("O@", "3:"), "O:": ("A:", "oU"), "O": ("A:", "oU"), "0": ("V", "oU"),
    "O@": ("A@", "oU"), "o@": ("A@", "oU"), "oU": ("O:", "u:"), "u:": ("U", "oU"),
    "U": ("u:", "V"), "U@": ("O@", "u:"), "V": ("a", "U"), "@": ("I", "V"), "3": ("@", "A@"),
    "3:": ("A@", "O@"), "eI": ("E", "aI", "i:"), "aI": ("eI", "OI"), "OI": ("aI", "oU"),
    "aU": ("oU", "aI"), "i@": ("e@", "I"), "e@": ("i@", "E"), "@L": ("l", "oU"),
}
_UNITS = sorted(set(CONSONANTS) | set(VOWELS), key=len, reverse=True)


def phoneme_tokens(ph: str) -> list[str]:
    """eSpeak NG mnemonics split into phonemes and the marks between them (``'``, ``,``, ``_``,
    ``:``, spaces, anything unknown: one character each).  ``"".join`` gives ``ph`` back."""
    out, i = [], 0
    while i < len(ph):
        unit = next((u for u in _UNITS if ph.startswith(u, i)), ph[i])
        out.append(unit)
        i += len(unit)
    return out


def one_edit_away(ph: str) -> list[str]:
    """Every phoneme string one substitution (:data:`NEIGHBOURS`) or one consonant deletion from
    ``ph``, without ``ph`` itself, sorted."""
    tokens = phoneme_tokens(ph)
    out = set()
    for i, t in enumerate(tokens):
        for sub in NEIGHBOURS.get(t, ()):
            out.add("".join(tokens[:i] + [sub] + tokens[i + 1:]))
        if t in CONSONANTS and sum(u in CONSONANTS or u in VOWELS for u in tokens) > 2:
            out.add("".join(tokens[:i] + tokens[i + 1:]))
    out.discard(ph)
    return sorted(o for o in out if o.strip("_ '"))


def confusables(text: str, n: int, seed: int = 0) -> list[str]:
    """``n`` phoneme strings one edit from ``text``'s (fewer if there are fewer), a seeded pick.

    Raises
    ------
    ConfigError
        ``n`` is not positive, or ``text`` is no speakable text (:mod:`kws_proto.spot.synthetic`).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"confusables={n!r} must be a positive number of words")
    base = phonemes(check_text(text))
    candidates = one_edit_away(base)
    if not candidates:
        raise ConfigError(f"keyword text {text!r} ({base}): no phoneme of it can be edited")
    rng = np.random.default_rng([seed, 0xC0F])
    return [candidates[i] for i in sorted(rng.permutation(len(candidates))[:n])]


def confusable_clips(text: str, n: int, voices: int = 3, sr: int = 16000, seed: int = 0):
    """Each of :func:`confusables` spoken by ``voices`` built-in voices (the confusable ``i``
    by voices ``i * voices`` to ``(i + 1) * voices - 1`` of speakers drawn with ``seed + 1``):
    ``[(name, samples)]`` as :func:`kws_proto.spot.synthetic.say` gives them, and the phoneme
    strings said (one no voice can say within the clip is left out)."""
    words = confusables(text, n, seed)
    pool = voice_settings(max(1, len(words) * voices), seed=seed + 1)
    clips, said = [], []
    for i, ph in enumerate(words):
        try:
            got = say(f"[[{ph}]]", pool[i * voices:(i + 1) * voices], sr=sr, seed=seed + i)
        except ConfigError:  # no voice says this one within the clip: leave it out
            continue
        said.append(ph)
        clips += [(f"confusable:{ph}:{name.split(':')[1]}", y) for name, y in got]
    if not clips:
        raise ConfigError(f"keyword text {text!r}: none of its confusables could be said")
    return clips, said
