"""Offline forced alignment of a transcript to its recording with PocketSphinx 5.

The ``pocketsphinx`` wheel (extra ``align``) ships the CMU Sphinx en-us acoustic model and the CMU
pronouncing dictionary (``pocketsphinx.get_model_path()``), so nothing is downloaded.  The decoder
runs in word alignment mode (``Decoder.set_align_text``): the words in order, optional silences
between them, 100 frames a second, the search's Viterbi path without lattice rescoring.  A word that is not in the dictionary needs a pronunciation
from a CMUdict-format lexicon (``WORD PH ON ES``); an alignment that does not end in the last word
of the transcript (the decoder gave up inside the sentence) is an :class:`AlignmentError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from kws_proto.errors import ConfigError, KwsError

SR = 16000
FRAME_SECONDS = 0.01
#: Decoder entries that are not words of the transcript.
_FILLERS = ("<s>", "</s>", "<sil>")


class AlignmentError(KwsError):
    """A transcript could not be aligned to its recording."""


@dataclass(frozen=True)
class WordTiming:
    """Where a word of the transcript is spoken, in seconds from the start of the recording."""

    word: str
    start: float
    end: float


def read_lexicon(path: str | os.PathLike) -> dict[str, str]:
    """Pronunciations of a CMUdict-format file: ``WORD PH ON ES`` lines, ``;;;`` comments.

    Words are lower-cased; an alternative (``WORD(2)``) after the first is ignored.

    Returns
    -------
    lexicon : dict
        ``{word: "PH ON ES"}``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"lexicon {path}: no such file")
    lexicon: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts or line.startswith(";;;"):
            continue
        if len(parts) < 2:
            raise ConfigError(f"{path}:{n}: {line.strip()!r} has no phones (want 'WORD PH ON ES')")
        word = parts[0].lower().split("(")[0]
        lexicon.setdefault(word, " ".join(parts[1:]).upper())
    return lexicon


def _pocketsphinx():
    try:
        import pocketsphinx  # lazy: optional extra align
    except ImportError as e:
        raise KwsError("forced alignment needs PocketSphinx: pip install 'kws_proto[align]' "
                       f"(pocketsphinx>=5) ({e})") from e
    return pocketsphinx


class Aligner:
    """Word boundaries of a known transcript (PocketSphinx en-us, 16 kHz).

    Parameters
    ----------
    lexicon : mapping, optional
        ``{word: "PH ON ES"}`` (ARPAbet, as CMUdict) for words the built-in dictionary lacks; words
        it has keep their own pronunciations.
    """

    def __init__(self, lexicon: Mapping[str, str] | None = None) -> None:
        ps = _pocketsphinx()
        # bestpath off: the alignment search's own Viterbi path.  The lattice rescoring that is on
        # by default loses the last words of 13 of speechocean762's 400 sentences (experiments/words.md)
        self._decoder = ps.Decoder(lm=None, samprate=SR, bestpath=False, loglevel="FATAL")
        added = [w for w in sorted(lexicon or {}) if self._decoder.lookup_word(w) is None]
        for i, word in enumerate(added):
            try:
                self._decoder.add_word(word, lexicon[word], update=i == len(added) - 1)
            except RuntimeError as e:
                raise ConfigError(f"lexicon: cannot add {word!r} as {lexicon[word]!r} "
                                  "(phones must be the en-us model's ARPAbet set)") from e

    def missing(self, words: Sequence[str]) -> list[str]:
        """The words that have no pronunciation, in first-seen order."""
        return [w for w in dict.fromkeys(words) if self._decoder.lookup_word(w) is None]

    def align(self, y: np.ndarray, words: Sequence[str]) -> list[WordTiming]:
        """Start and end of every word of ``words`` in ``y``.

        Parameters
        ----------
        y : np.ndarray [shape=(n,), dtype=float32]
            The recording at 16 kHz, samples in [-1, 1].
        words : sequence of str
            The transcript (every word in the dictionary: see :meth:`missing`).

        Returns
        -------
        timings : list of WordTiming
            One per word, in order; ``end`` is the end of the word's last frame.

        Raises
        ------
        AlignmentError
            The decoder found no path through the whole transcript.
        """
        pcm = np.clip(np.round(y * 32768.0), -32768, 32767).astype("<i2")  # [n] int16, 16-bit input exact
        d = self._decoder
        d.set_align_text(" ".join(words))
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        segments = [(s.word.split("(")[0], s.start_frame, s.end_frame) for s in (d.seg() or [])]
        timings = [WordTiming(w, round(a * FRAME_SECONDS, 2), round((b + 1) * FRAME_SECONDS, 2))
                   for w, a, b in segments if w not in _FILLERS and not w.startswith(("[", "+"))]
        found = [t.word for t in timings]
        if found != list(words):
            got = " ".join(found) or "nothing"
            raise AlignmentError(f"the decoder's path covers only {got!r}")
        return timings
