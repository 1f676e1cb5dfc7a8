"""A word said between two others: each clip's 1 s window with the ends of two other clips of the
same voice placed around its speech, as a word sits inside running speech.

Used to train the head on the speech embedding (:mod:`kws_proto.train.gse_head`,
``neighbours``): a keyword spotted in a sentence shares its 1 s window with the end of the word
before it and the start of the word after it, which isolated training clips never show.  NumPy
only, seeded: one seed fixes every clip's neighbours and gaps.
"""

from __future__ import annotations

import numpy as np

MAX_GAP = 1280  # samples between a neighbour and the word: up to 80 ms at 16 kHz
HOP = 160  # 10 ms frames of the energy envelope


def speech_extent(wave: np.ndarray, share: float = 0.05, hop: int = HOP) -> tuple[int, int]:
    """``(start, end)`` samples of ``wave [samples]`` whose 10 ms moving RMS exceeds ``share``
    of its maximum (the whole clip when it is silent)."""
    wave = np.asarray(wave, np.float32)
    envelope = np.sqrt(np.convolve(wave ** 2, np.ones(hop) / hop, "same"))
    loud = np.flatnonzero(envelope > share * envelope.max())
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, len(wave))


def with_neighbours(waves: np.ndarray, speakers, seed: int = 0,
                    max_gap: int = MAX_GAP) -> np.ndarray:
    """``waves [n, samples]`` float32 in [-1, 1] -> the same clips, each with the end of another
    clip's speech ending 0..``max_gap`` samples before its own speech starts and the start of a
    third's beginning as far after it ends (both drawn from the clips of its speaker, ``speakers
    [n]``), cut at the window's edges and clipped to [-1, 1]."""
    waves = np.asarray(waves, np.float32)
    speakers = np.asarray(speakers)
    if waves.ndim != 2 or len(speakers) != len(waves):
        raise ValueError(f"waves must be [n, samples] with one speaker each, got {waves.shape} "
                         f"and {len(speakers)} speakers")
    extents = np.array([speech_extent(w) for w in waves]).reshape(-1, 2)
    by_speaker = {s: np.flatnonzero(speakers == s) for s in set(speakers.tolist())}
    rng = np.random.default_rng(seed)
    out = waves.copy()
    for i, extent in enumerate(extents):
        before, after = rng.choice(by_speaker[speakers[i].item()], 2)
        gaps = rng.integers(0, max_gap, 2)
        _place_around(out[i], extent, waves[before, slice(*extents[before])],
                      waves[after, slice(*extents[after])], gaps)
    return np.clip(out, -1.0, 1.0, out=out)


def between(wave: np.ndarray, before: np.ndarray, after: np.ndarray, rng: np.random.Generator,
            max_gap: int = MAX_GAP) -> np.ndarray:
    """``wave [samples]`` with the end of ``before``'s speech ending 0..``max_gap`` samples
    before its own speech and the start of ``after``'s as far after it (any lengths; each
    neighbour's speech scaled to the RMS of ``wave``'s), clipped to [-1, 1]: one clip of
    :func:`with_neighbours` with neighbours of another source (enrolment's context views)."""
    out = np.array(wave, np.float32)
    extent = speech_extent(out)
    level = _rms(out[slice(*extent)])
    pieces = []
    for other in (before, after):
        other = np.asarray(other, np.float32)
        speech = other[slice(*speech_extent(other))]
        pieces.append(speech * (level / max(_rms(speech), 1e-9)))
    _place_around(out, extent, *pieces, rng.integers(0, max_gap, 2))
    return np.clip(out, -1.0, 1.0, out=out)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _place_around(out: np.ndarray, extent, tail: np.ndarray, head: np.ndarray, gaps) -> None:
    """Add ``tail``'s end before ``out``'s speech ``extent = (start, end)`` and ``head``'s start
    after it, ``gaps`` samples away, cut at the window's edges (in place)."""
    (start, end), n = extent, len(out)
    stop = start - int(gaps[0])  # the word before ends here
    if stop > 0:
        piece = tail[max(0, len(tail) - stop):]
        out[stop - len(piece):stop] += piece
    begin = end + int(gaps[1])  # the word after starts here
    if begin < n:
        piece = head[:n - begin]
        out[begin:begin + len(piece)] += piece
