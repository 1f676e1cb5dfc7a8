"""Spotting keywords in long audio: a sliding window, per-window decisions, merged events.

A window of the front end's clip length (1 s) slides over the recording every ``hop`` seconds
(:mod:`kws_proto.spot.windows`: the last window is zero-padded; audio shorter than one window is
padded to one).  All windows go through the in-graph front end and encoder in batches (one
``tf.function``), each window gets the classification rule of
:func:`kws_proto.spot.decision.decide` (nearest keyword within its threshold, else none; windows
quieter than ``min_db``, ``MIN_DB`` dBFS by default, are none: the front end normalises every
window, so faint background would otherwise look like any loud sound), and :class:`EventMerger`
turns runs of windows of the same keyword into events:

- a run may skip up to ``max_gap`` windows (a brief dip under the threshold);
- a run of fewer than ``min_hits`` hit windows is dropped;
- an event spans its first hit window's start to its last hit window's end, so the spoken
  keyword lies inside it; ``score = 1 - min(d / t)`` over its windows (0 at the threshold,
  higher is surer), ``peak`` is the centre of its best window;
- overlapping events of one keyword join; of different keywords, the higher score stays.

:func:`match_events` scores detections against known events (hits, misses, false alarms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws_proto.audio.loading import LEVEL_GATE_DB, power_db, read_audio
from kws_proto.errors import AudioError, ConfigError
from kws_proto.spot.decision import decide, keyword_distances
from kws_proto.spot.windows import HOP, Framing

MIN_HITS = 3
MAX_GAP = 1
MIN_DB = LEVEL_GATE_DB  # -50 dBFS; enrolment refuses support clips that never reach it


@dataclass(frozen=True)
class Event:
    """A detected (or true) keyword occurrence; times in seconds from the start of the audio."""

    keyword: str
    start: float
    end: float
    score: float = 1.0
    distance: float = 0.0
    peak: float = 0.0

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class Detection:
    """Result of :func:`detect_audio`: events plus what it cost."""

    events: list[Event]
    duration: float  # seconds of audio
    seconds: float  # processing time (reading, embedding, scoring, merging)
    windows: int
    hop: float

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time / audio duration."""
        return self.seconds / self.duration

    def to_dict(self) -> dict:
        return {"events": [e.to_dict() for e in self.events], "duration": round(self.duration, 3),
                "seconds": round(self.seconds, 3), "rtf": round(self.rtf, 4),
                "windows": self.windows, "hop": self.hop}


@dataclass
class EventMerger:
    """Online merging of per-window decisions into events (offline detection and ``--mic``).

    ``push`` one window at a time, in order; it returns the events that have closed.
    """

    names: list[str]
    window: float
    min_hits: int = MIN_HITS
    max_gap: int = MAX_GAP
    _run: dict | None = field(default=None, repr=False)
    _pending: list[Event] = field(default_factory=list, repr=False)

    def push(self, start: float, label: int, ratio: float, distance: float) -> list[Event]:
        """Window starting at ``start`` s decided as keyword ``label`` (-1 none) at ``d / t``."""
        run, out = self._run, []
        if run is not None:
            other_keyword = label >= 0 and label != run["label"]
            gap_too_long = label < 0 and run["gap"] >= self.max_gap
            if other_keyword or gap_too_long:
                out += self._close()
                run = None
        if label >= 0:
            if run is None:
                run = self._run = {"label": label, "first": start, "last": start, "hits": 0,
                                   "ratio": np.inf, "distance": 0.0, "peak": start, "gap": 0}
            run.update(last=start, hits=run["hits"] + 1, gap=0)
            if ratio < run["ratio"]:
                run.update(ratio=ratio, distance=distance, peak=start + self.window / 2)
        elif run is not None:
            run["gap"] += 1
        return self._emit(out, start)

    def flush(self) -> list[Event]:
        """Close the open run and return every remaining event."""
        events, self._pending = _suppress(self._pending + self._close()), []
        return events

    def _close(self) -> list[Event]:
        run, self._run = self._run, None
        if run is None or run["hits"] < self.min_hits:
            return []
        return [Event(self.names[run["label"]], run["first"], run["last"] + self.window,
                      score=float(1.0 - run["ratio"]), distance=float(run["distance"]),
                      peak=float(run["peak"]))]

    def _emit(self, closed: list[Event], now: float) -> list[Event]:
        """Release the groups of overlapping events that no later event can join.

        Every later event starts at or after ``horizon`` (the open run's start, or now), so a
        group of held events ending by then is final; suppression within it is what it would be
        over the whole recording.
        """
        self._pending += closed
        horizon = min(now, self._run["first"] if self._run is not None else np.inf)
        ready, held, group, group_end = [], [], [], -np.inf
        for e in sorted(self._pending, key=lambda e: e.start) + [None]:
            if group and (e is None or e.start >= group_end):
                (ready if group_end <= horizon else held).extend(group)
                group, group_end = [], -np.inf
            if e is not None:
                group.append(e)
                group_end = max(group_end, e.end)
        self._pending = held
        return _suppress(ready)


def _join(events: list[Event]) -> list[Event]:
    """Overlapping events of the same keyword as one (their span, the best score)."""
    out: list[Event] = []
    for e in sorted(events, key=lambda e: e.start):
        prev = next((o for o in reversed(out) if o.keyword == e.keyword and e.start < o.end), None)
        if prev is None:
            out.append(e)
            continue
        best = prev if prev.score >= e.score else e
        out[out.index(prev)] = Event(e.keyword, prev.start, max(prev.end, e.end), best.score,
                                     best.distance, best.peak)
    return out


def _suppress(events: list[Event]) -> list[Event]:
    """Join overlapping events of one keyword; among overlapping events of different keywords
    keep the higher score.  Sorted by start."""
    kept: list[Event] = []
    for e in sorted(_join(events), key=lambda e: -e.score):
        if all(e.end <= k.start or e.start >= k.end or e.keyword == k.keyword for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda e: e.start)


def level_db(windows: np.ndarray, batch: int = 1024) -> np.ndarray:
    """RMS level of each window in dB full scale: ``[n]`` for ``windows [n, samples]``
    (``batch`` windows at a time, so a strided view of hours of audio is never copied whole)."""
    ms = np.concatenate([np.mean(np.square(windows[i:i + batch], dtype=np.float64), axis=-1)
                         for i in range(0, len(windows), batch)])
    return power_db(ms)


def decide_windows(distances: np.ndarray, levels: np.ndarray | None, thresholds: np.ndarray,
                   min_db: float | None = MIN_DB):
    """Per-window decisions from ``distances [n, n_kw]`` and ``levels [n]`` (dBFS): ``labels [n]``
    (-1 none), ``ratio [n]`` (``d / t`` of the label or of the nearest keyword) and
    ``distance [n]``.  Windows quieter than ``min_db`` are none (the front end normalises each
    window, so faint noise would look like any sound)."""
    labels = decide(distances, thresholds)  # [n]
    if min_db is not None:
        labels = np.where(levels >= min_db, labels, -1)
    pick = np.where(labels >= 0, labels, distances.argmin(axis=1))
    rows = np.arange(len(distances))
    d = distances[rows, pick]
    return labels, d / np.maximum(thresholds[pick], 1e-12), d


def window_scores(spotter, bank, windows: np.ndarray, min_db: float | None = MIN_DB):
    """:func:`decide_windows` of ``windows [n, samples]`` embedded by ``spotter``."""
    d = keyword_distances(bank, spotter.embed(windows))  # [n, n_kw]
    levels = level_db(windows) if min_db is not None else None
    return decide_windows(d, levels, bank.thresholds, min_db)


def merge_events(names, starts, labels, ratio, distance, window: float,
                 min_hits: int = MIN_HITS, max_gap: int = MAX_GAP) -> list[Event]:
    """The events of a sequence of window decisions (:func:`decide_windows`), windows starting at
    ``starts [n]`` seconds and ``window`` seconds long: merged by :class:`EventMerger`, then
    overlapping events suppressed."""
    merger = EventMerger(names, window, min_hits=min_hits, max_gap=max_gap)
    events = []
    for i in range(len(labels)):
        events += merger.push(float(starts[i]), int(labels[i]), float(ratio[i]), float(distance[i]))
    return _suppress(events + merger.flush())


def detect_audio(spotter, bank, audio, hop: float = HOP, min_hits: int = MIN_HITS,
                 max_gap: int = MAX_GAP, min_db: float | None = MIN_DB) -> Detection:
    """Slide the clip-length window over ``audio`` and merge hits into events.

    Parameters
    ----------
    spotter : KeywordSpotter
    bank : KeywordBank
    audio : path or np.ndarray [shape=(n,)]
        A recording (any rate: resampled), or samples at the front end's rate.
    hop : float > 0
        Seconds between window starts.
    min_hits, max_gap : int
        See :class:`EventMerger`.
    min_db : float or None
        Windows quieter than this (RMS, dB full scale) are not a keyword; None scores all.

    Returns
    -------
    Detection
    """
    f = spotter.features
    framing = Framing.of(f, hop)
    if not (int(min_hits) == min_hits >= 1 and int(max_gap) == max_gap >= 0):
        raise ConfigError(f"min_hits={min_hits!r} must be an integer >= 1 and "
                          f"max_gap={max_gap!r} an integer >= 0")
    t0 = time.perf_counter()
    y = read_audio(audio, f.sample_rate) if isinstance(audio, (str, Path)) else np.asarray(audio, np.float32)
    if y.ndim != 1 or not len(y):
        raise AudioError(f"audio of shape {y.shape}: detection needs a non-empty 1-D signal")
    windows = framing.frame(y)  # [n_windows, num_samples]
    labels, ratio, dist = window_scores(spotter, bank, windows, min_db)
    events = merge_events(bank.names, framing.starts(len(windows)), labels, ratio, dist,
                          f.clip_seconds, min_hits, max_gap)
    seconds = time.perf_counter() - t0
    return Detection(events, len(y) / f.sample_rate, seconds, len(windows), hop)


def match_events(detected: list[Event], truth: list[Event]) -> dict:
    """Hits, misses and false alarms of ``detected`` against ``truth``.

    A detection hits a true event of the same keyword whose span it overlaps; each true event
    is hit at most once (a second detection of it is a false alarm).

    Returns
    -------
    counts : dict
        ``hits``, ``misses``, ``false_alarms`` (ints) and ``missed`` / ``false`` (the events).
    """
    used: set[int] = set()
    false = []
    for e in sorted(detected, key=lambda e: -e.score):
        match = next((i for i, t in enumerate(truth) if i not in used and t.keyword == e.keyword
                      and e.start < t.end and t.start < e.end), None)
        if match is None:
            false.append(e)
        else:
            used.add(match)
    missed = [t for i, t in enumerate(truth) if i not in used]
    return {"hits": len(used), "misses": len(missed), "false_alarms": len(false),
            "missed": missed, "false": sorted(false, key=lambda e: e.start)}
