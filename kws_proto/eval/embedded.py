"""Recordings cut into the detector's windows and embedded once, then scored against a bank.

The spotting benchmarks (:mod:`kws_proto.eval.spot_eval`, :mod:`kws_proto.eval.sentence_eval`)
embed each recording's windows once per model and hop and share them among every variant and
threshold factor; only the distances to a trial's keywords are computed per bank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kws_proto.spot.cohort import window_stats
from kws_proto.spot.decision import keyword_distances
from kws_proto.spot.detect import level_db
from kws_proto.spot.windows import WINDOW_BATCH, Framing


@dataclass
class WindowScores:
    """A recording's windows scored once: distances to every keyword and levels."""

    distances: np.ndarray  # [n_windows, n_kw]
    levels: np.ndarray  # [n_windows] dBFS
    starts: np.ndarray  # [n_windows] seconds
    window: float  # seconds


@dataclass
class Embedded:
    """Every window of a list of recordings embedded once: ``embeddings [n, d]``, ``levels [n]``
    (dBFS), ``starts [n]`` (seconds in its recording) and each recording's ``[a, b)`` rows."""

    embeddings: np.ndarray
    levels: np.ndarray
    starts: np.ndarray
    bounds: list[tuple[int, int]]
    window: float
    seconds: float
    _stats: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def distances(self, bank, window_cohort: tuple | None = None) -> np.ndarray:
        """Every window's distances to ``bank``'s keywords ``[n, n_kw]``
        (:func:`kws_proto.spot.decision.keyword_distances`); ``window_cohort = (embeddings,
        top)``: the window side of s-norm against those embeddings
        (:func:`kws_proto.spot.cohort.window_stats`, computed once per cohort array and ``top``:
        the benchmarks keep their cohorts for as long as these windows)."""
        stats = None
        if window_cohort is not None:
            cohort, top = window_cohort
            key = (id(cohort), top)
            if key not in self._stats:
                self._stats[key] = window_stats(self.embeddings, cohort, top)
            stats = self._stats[key]
        return keyword_distances(bank, self.embeddings, stats)

    def scores(self, bank, window_cohort: tuple | None = None) -> list[WindowScores]:
        """Per recording, its windows' distances to ``bank``'s keywords (:meth:`distances`)."""
        d = self.distances(bank, window_cohort)
        return [WindowScores(d[a:b], self.levels[a:b], self.starts[a:b], self.window)
                for a, b in self.bounds]


def embed_recordings(spotter, audios, hop: float, batch: int = WINDOW_BATCH) -> Embedded:
    """The windows of each of ``audios`` (arrays at the front end's rate) as ``detect`` cuts
    them, embedded in batches across recordings."""
    f = spotter.features
    framing = Framing.of(f, hop)
    windows, levels, starts, bounds, at, seconds = [], [], [], [], 0, 0.0
    for y in audios:
        w = framing.frame(y)
        windows.append(w)
        levels.append(level_db(w))
        starts.append(framing.starts(len(w)))
        bounds.append((at, at + len(w)))
        at += len(w)
        seconds += len(y) / f.sample_rate
    every = np.concatenate(windows)
    emb = np.concatenate([np.asarray(spotter.embed(np.ascontiguousarray(every[i:i + batch])))
                          for i in range(0, len(every), batch)])
    return Embedded(emb, np.concatenate(levels), np.concatenate(starts), bounds,
                    f.clip_seconds, seconds)
