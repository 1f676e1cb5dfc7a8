"""An operating point in false alarms per hour: a keyword's threshold from keyword-free audio.

A *background* is long audio that does not hold the keyword (other speech, noise, any
recordings), cut by the detector's own sliding window (:class:`~kws_proto.spot.windows.Framing`,
``hop`` seconds) and embedded: :class:`Background` keeps each window's embedding, its start
within its file, which file, and its level (dBFS), plus the audio's length in hours.  Each file
contributes its windows and its duration; a clip shorter than ``min_hits`` windows (1.2 s) can
make no event on its own, so folders of short clips are better joined back to back into one
recording (``join``), as a stream of them would reach the detector.

**Rate rule** (:func:`threshold_for_rate`).  At a threshold ``t`` the windows with ``d <= t`` (and
at least ``min_db`` loud, as the detector gates them) are merged into events file by file exactly
as :func:`kws_proto.spot.detect.merge_events` merges them (runs within ``max_gap``, at least
``min_hits`` hits, overlapping events joined); the allowed events are ``floor(rate x hours)``.
The threshold is a background distance ``t`` at which the events are at most that and at the next
distance up more: a crossing going up from the smallest distance, found by doubling steps
through the sorted distances and then halving the last one.  The count is not monotone
everywhere (a new hit can join two events into one, and accepting every window makes one event
per file), so the search starts at the bottom, where a rate far below the background's windows
per hour puts the crossing, and reaches the largest distance last; where the count dips
between two probes, a crossing inside the dip can be stepped over.  A background on which no
threshold exceeds the rate is refused: it is too short to set the threshold.

A background is saved as one ``.npz`` (header JSON, arrays, SHA-256 checksum; written
atomically, like :mod:`kws_proto.spot.bank`) with the fingerprint of the encoder that embedded
it: a keyword is never calibrated on another encoder's embeddings.  Its embeddings may be stored
as float16 (``half``: half the size, for a background a model ships); they are read back as
float32, and the digest naming the cohort is of what is read.

**A model's own background.**  A model folder may ship one as ``background.npz``
(:data:`SHIPPED`, built by ``make pretrained``): :func:`shipped_background` finds it, and
:meth:`KeywordSpotter.enroll <kws_proto.spot.spotter.KeywordSpotter.enroll>` uses it when no other
background is given (:mod:`kws_proto.spot.enrolment`, "The default rule").

A background is also the cohort of per-keyword score normalisation (:meth:`Background.norm`,
:mod:`kws_proto.spot.cohort`): a keyword's statistics of its nearest windows, named by the
encoder's fingerprint and a digest of the embeddings.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from kws_proto.audio.loading import read_audio
from kws_proto.errors import AudioError, BankError, ConfigError
from kws_proto.spot.bank import PROTOTYPE
from kws_proto.spot.cohort import (NORM_LEVEL, RATIO, SNORM, TOP, CohortNorm, check_norm,
                                   cohort_norm, embeddings_digest, level_threshold)
from kws_proto.spot.decision import distances_to
from kws_proto.spot.detect import MAX_GAP, MIN_DB, MIN_HITS, level_db, merge_events
from kws_proto.spot.windows import HOP, WINDOW_BATCH, Framing
from kws_proto.util.atomic import atomic_write_bytes
from kws_proto.util.checked_npz import checked_npz, checksum, stored_checksum

FORMAT = "kws_proto.spot.background"
VERSION = 1
SHIPPED = "background.npz"  # a model folder's own background
ARRAYS = ("embeddings", "starts", "segments", "levels")


@dataclass(frozen=True)
class Background:
    """Embedded windows of keyword-free audio.

    Attributes
    ----------
    embeddings : np.ndarray [shape=(n, d), dtype=float32]
    hours : float
        Length of the audio the windows cover.
    source : str
        What the audio was (the files or folders given).
    fingerprint : str
        The encoder's weights fingerprint (:attr:`KeywordSpotter.fingerprint`).
    starts : np.ndarray [shape=(n,), dtype=float64] or None
        Each window's start in seconds within its file; None: ``hop`` apart from 0.
    segments : np.ndarray [shape=(n,), dtype=int64] or None
        Each window's file (windows of a file are contiguous); None: one file.
    levels : np.ndarray [shape=(n,), dtype=float64] or None
        Each window's RMS level (dBFS); None: every window loud (0 dBFS).
    window, hop : float
        Window length and hop in seconds.
    features : str
        The front end's digest (empty: not recorded).
    cohort_level : float or None
        As a cohort: the level ``z`` its keywords normalised by ``cohort_norm`` are cut at unless
        another is given (None, or another normalisation:
        :data:`kws_proto.spot.cohort.NORM_LEVEL`); a model's own background carries the one
        measured for it.
    cohort_norm : str or None
        The normalisation (:data:`kws_proto.spot.cohort.NORMS`) its ``cohort_level`` was measured
        for, and the one the default enrolment normalises by against it (None: ``"snorm"``).
    """

    embeddings: np.ndarray
    hours: float
    source: str
    fingerprint: str
    starts: np.ndarray | None = None
    segments: np.ndarray | None = None
    levels: np.ndarray | None = None
    window: float = 1.0
    hop: float = HOP
    features: str = ""
    cohort_level: float | None = None
    cohort_norm: str | None = None

    def __post_init__(self):
        e = np.asarray(self.embeddings, dtype=np.float32)
        n = len(e)
        fill = {"embeddings": e,
                "starts": np.arange(n) * self.hop if self.starts is None else self.starts,
                "segments": np.zeros(n) if self.segments is None else self.segments,
                "levels": np.zeros(n) if self.levels is None else self.levels}
        for name, kind in zip(ARRAYS, (np.float32, np.float64, np.int64, np.float64)):
            a = np.asarray(fill[name], dtype=kind)
            if a.shape[:1] != (n,) or (name != "embeddings" and a.ndim != 1) or e.ndim != 2:
                raise ConfigError(f"background {name} of shape {a.shape}: expected one row per "
                                  f"window of embeddings {e.shape}")
            object.__setattr__(self, name, a)
        if not (math.isfinite(self.hours) and self.hours > 0):
            raise ConfigError(f"background of {self.hours!r} hours: expected a positive length")
        if self.cohort_level is not None:
            level_threshold(self.cohort_level)  # a finite z within the clip, else ConfigError
        check_norm(self.cohort_norm)

    @property
    def norm_rule(self) -> str:
        """The normalisation keywords are normalised by against this cohort unless another is
        asked for: ``cohort_norm``, else ``"snorm"``."""
        return self.cohort_norm or SNORM

    def level(self, norm: str) -> float:
        """The level ``z`` a keyword normalised by ``norm`` is cut at against this cohort unless
        another is given: ``cohort_level`` when it was measured for ``norm``, else
        :data:`~kws_proto.spot.cohort.NORM_LEVEL`."""
        if self.cohort_level is None or norm != self.norm_rule:
            return NORM_LEVEL
        return self.cohort_level

    def __len__(self) -> int:
        return len(self.embeddings)

    def check(self, fingerprint: str, features: str = "") -> None:
        """Raise :class:`BankError` unless this background was embedded by the encoder of
        ``fingerprint`` (and the front end of digest ``features``, when both are recorded)."""
        if self.fingerprint != fingerprint:
            raise BankError(f"the background ({self.source}) was embedded by another encoder: "
                            f"background fingerprint {self.fingerprint[:16]}..., this encoder "
                            f"{fingerprint[:16]}...; build it again with this encoder "
                            "(`kws-proto background`)")
        if self.features and features and self.features != features:
            raise BankError(f"the background ({self.source}) was embedded with front end "
                            f"{self.features}, this encoder uses {features}")

    def threshold(self, prototype: np.ndarray, rate: float, min_hits: int = MIN_HITS,
                  max_gap: int = MAX_GAP, min_db: float | None = MIN_DB,
                  support: np.ndarray | None = None, score: str = PROTOTYPE,
                  norm: CohortNorm | None = None) -> tuple[float, dict]:
        """:func:`threshold_for_rate` of a keyword ``prototype [d]`` on this background (with
        ``score="maxcos"``: of its ``support [k, d]``, :func:`kws_proto.spot.decision.distances_to`;
        with ``norm``: on its normalised scale); the calibration record names the background."""
        d = distances_to(self.embeddings, prototype, support, score, norm)  # [n]
        t, info = threshold_for_rate(d, self.hours, rate, self.starts, self.segments, self.levels,
                                     self.window, min_hits, max_gap, min_db)
        info.update(background=self.source, background_hours=round(self.hours, 6),
                    background_windows=len(self))
        return t, info

    @cached_property
    def digest(self) -> str:
        """Hex SHA-256 of the embeddings (:func:`kws_proto.spot.cohort.embeddings_digest`;
        computed once)."""
        return embeddings_digest(self.embeddings)

    def norm(self, prototype: np.ndarray, support: np.ndarray | None = None,
             score: str = PROTOTYPE, top: int = TOP, method: str = SNORM) -> CohortNorm:
        """A keyword's :class:`~kws_proto.spot.cohort.CohortNorm` against this background as the
        cohort: the statistics of its ``top`` nearest windows by rule ``score``, in the unit of
        ``method`` (``"snorm"`` or ``"ratio"``)."""
        d = distances_to(self.embeddings, prototype, support, score)  # [n]
        return cohort_norm(d, top, self.fingerprint, self.digest, self.source, method)


def _segments(segments: np.ndarray) -> list[slice]:
    """The contiguous runs of equal values of ``segments [n]`` as slices."""
    cuts = np.flatnonzero(np.diff(segments)) + 1
    edges = [0, *cuts.tolist(), len(segments)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def count_events(distances, threshold: float, starts, parts: list[slice], loud, window: float,
                 min_hits: int = MIN_HITS, max_gap: int = MAX_GAP) -> int:
    """Events the detector would report at ``threshold`` on windows at ``distances [n]`` (one
    keyword), merged per file (``parts``) by :func:`kws_proto.spot.detect.merge_events`;
    ``loud [n]`` (bool) marks the windows the level gate lets through.  Stretches between hits
    more than ``max_gap`` windows and at least ``window`` seconds apart are merged apart: no run
    and no event spans them, so the count is the same and the misses far from any hit are skipped."""
    hit = (distances <= threshold) & loud  # [n]
    labels = np.where(hit, 0, -1)
    ratio = distances / max(threshold, 1e-12)
    total = 0
    for s in parts:
        at = np.flatnonzero(hit[s]) + s.start  # [h] the file's hit windows
        if len(at) < min_hits:  # fewer hits make no event
            continue
        apart = (np.diff(at) > max_gap + 1) & (np.diff(starts[at]) >= window)  # [h - 1]
        cuts = np.flatnonzero(apart)
        for a, b in zip([0, *(cuts + 1).tolist()], [*cuts.tolist(), len(at) - 1]):
            if b - a + 1 >= min_hits:
                w = slice(at[a], at[b] + 1)
                total += len(merge_events(["keyword"], starts[w], labels[w], ratio[w],
                                          distances[w], window, min_hits, max_gap))
    return total


def threshold_for_rate(distances, hours: float, rate: float, starts=None, segments=None,
                       levels=None, window: float = 1.0, min_hits: int = MIN_HITS,
                       max_gap: int = MAX_GAP, min_db: float | None = MIN_DB,
                       hop: float = HOP) -> tuple[float, dict]:
    """The threshold at which a keyword fires at most ``rate`` times an hour on a background
    (module docstring: the rule).

    Parameters
    ----------
    distances : np.ndarray [shape=(n,)]
        Squared distances of the background's windows to the keyword's prototype.
    hours : float > 0
        Length of the background audio.
    rate : float > 0
        False alarms (events) per hour allowed.
    starts, segments, levels : np.ndarray [shape=(n,)] or None
        As :class:`Background` holds them (None: one file, ``hop`` apart, all loud).
    window : float
        Window length in seconds.
    min_hits, max_gap, min_db
        The detector's merging and level gate (:func:`kws_proto.spot.detect.detect_audio`).

    Returns
    -------
    threshold : float
    calibration : dict
        ``rule``, ``fa_per_hour`` (the rate asked), ``achieved_fa_per_hour`` (events / hours at
        the threshold), ``events``, ``next_fa_per_hour`` (at the next background distance up).
    """
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ConfigError(f"fa_per_hour={rate!r} must be a positive number of false alarms per hour")
    d = np.asarray(distances, dtype=np.float64)
    n = len(d)
    starts = np.arange(n) * hop if starts is None else np.asarray(starts, np.float64)
    parts = _segments(np.zeros(n) if segments is None else np.asarray(segments))
    loud = (np.ones(n, bool) if levels is None or min_db is None
            else np.asarray(levels, np.float64) >= min_db)
    budget = math.floor(rate * hours + 1e-9)
    candidates = np.unique(d[loud])  # sorted

    def count(i: int) -> int:
        return count_events(d, candidates[i], starts, parts, loud, window, min_hits, max_gap)

    lo, hi, at = _crossing(count, len(candidates), budget)
    if hi is None:
        raise ConfigError(f"the background ({hours:.4g} h, {n} windows) is too short for "
                          f"{rate:g} false alarms per hour: no threshold makes more than "
                          f"{budget} event(s) on it before every window is accepted; give a "
                          "longer background or a lower rate")
    threshold = float(candidates[lo]) if lo >= 0 else float(np.nextafter(candidates[0], 0.0))
    return max(threshold, 0.0), {
        "rule": f"at most {rate:g} false alarms per hour on a background",
        "fa_per_hour": float(rate), "achieved_fa_per_hour": round(at / hours, 6), "events": at,
        "next_fa_per_hour": round(count(hi) / hours, 6)}


def _crossing(count, n: int, budget: int):
    """``(lo, hi, count(lo))``: ``count(lo) <= budget < count(hi)``, ``hi = lo + 1``, found by
    doubling steps up from the first candidate (the last, every window accepted, only after the one
    before it), then halving the last step (``lo = -1``: even the first exceeds; ``hi = None``:
    no candidate probed exceeds)."""
    lo, at, step = -1, 0, 1
    while True:
        i = min(lo + step, n - 2) if lo < n - 2 else n - 1  # all accepted (one event a file): last
        if i <= lo:
            return lo, None, at
        c = count(i)
        if c > budget:
            hi = i
            break
        lo, at, step = i, c, 2 * step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        c = count(mid)
        lo, hi, at = (mid, hi, c) if c <= budget else (lo, mid, at)
    return lo, hi, at


def build_background(spotter, files, hop: float = HOP, source: str | None = None,
                     join: bool = False, skip_unreadable: bool = False) -> Background:
    """Embed the sliding windows (``hop`` seconds) of every audio file of ``files`` with
    ``spotter``; each file is read whole (any rate: resampled), an unreadable one raises its
    :class:`~kws_proto.errors.AudioError` (``skip_unreadable``: is left out, and the source
    says how many were).  ``join``: the files back to back as one recording (a clip shorter
    than ``min_hits`` windows, 1.2 s, can make no event on its own).  The background names
    ``"ratio"`` as the normalisation of its default enrolment (``cohort_norm``; its level the
    generic one until one is measured for it): the cohort's mean was the better unit against
    the shipped background and against FSDD's speech alike (experiments/spotting.md, "The
    cohort's mean as the unit")."""
    f = spotter.features
    framing = Framing.of(f, hop)
    audios, skipped = [], 0
    for path in files:
        try:
            audios.append(read_audio(path, f.sample_rate))
        except AudioError:
            if not skip_unreadable:
                raise
            skipped += 1
    source = (source or ", ".join(str(p) for p in files)) + (
        f" ({skipped} unreadable left out)" if skipped else "")
    if join and audios:
        audios = [np.concatenate(audios)]
    emb, starts, segments, levels = [], [], [], []
    for i, y in enumerate(audios):
        windows = framing.frame(y)  # [m, num_samples]
        emb += [np.asarray(spotter.embed(windows[j:j + WINDOW_BATCH]), np.float32)
                for j in range(0, len(windows), WINDOW_BATCH)]
        starts.append(framing.starts(len(windows)))
        segments.append(np.full(len(windows), i))
        levels.append(level_db(windows))
    samples = sum(len(y) for y in audios)
    if not samples:
        raise ConfigError("no background audio given")
    return Background(np.concatenate(emb), samples / f.sample_rate / 3600.0,
                      source + (" (joined)" if join else ""),
                      spotter.fingerprint, np.concatenate(starts), np.concatenate(segments),
                      np.concatenate(levels), f.clip_seconds, hop, f.digest,
                      cohort_norm=RATIO)


def _header(bg: Background) -> bytes:
    h = {"format": FORMAT, "version": VERSION, "hours": bg.hours, "source": bg.source,
         "fingerprint": bg.fingerprint, "window": bg.window, "hop": bg.hop,
         "features": bg.features}
    if bg.cohort_level is not None:
        h["cohort_level"] = bg.cohort_level
    if bg.cohort_norm is not None:
        h["cohort_norm"] = bg.cohort_norm
    return json.dumps(h, sort_keys=True, separators=(",", ":")).encode("utf-8")


def save_background(bg: Background, path: str | os.PathLike, half: bool = False) -> Path:
    """Write ``bg`` to ``path`` (.npz) atomically, with a SHA-256 checksum; ``half``: its
    embeddings as float16 (read back as float32: the loaded background is ``bg`` rounded)."""
    path = Path(path)
    header = _header(bg)
    arrays = {name: getattr(bg, name) for name in ARRAYS}
    if half:
        arrays["embeddings"] = _half(arrays["embeddings"], path)
    atomic_write_bytes(path, checked_npz(header, arrays), fsync=True)
    return path


def _half(embeddings: np.ndarray, path: Path) -> np.ndarray:
    """``embeddings`` as float16, refused when a value does not fit (it would be stored as inf)."""
    big = float(np.abs(embeddings).max(initial=0.0))
    if big > float(np.finfo(np.float16).max):
        raise ConfigError(f"{path}: an embedding value of {big:.6g} does not fit in float16; "
                          "save the background at full precision")
    return embeddings.astype(np.float16)


def shipped_background(model_dir: str | os.PathLike) -> Path | None:
    """The background a model folder ships (``<model_dir>/background.npz``), or None."""
    path = Path(model_dir) / SHIPPED
    return path if path.is_file() else None


def load_background(path: str | os.PathLike) -> Background:
    """Read and verify a background written by :func:`save_background`.

    Raises
    ------
    BankError
        Missing, unreadable, not a background, of another version, or a checksum mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: no such background file (build one with `kws-proto background`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {m: z[m] for m in ("header", "checksum", *ARRAYS)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise BankError(f"{path}: not a background file, or truncated ({e})") from e
    header, stored = arrays.pop("header").tobytes(), stored_checksum(arrays)
    del arrays["checksum"]
    if stored != checksum(header, arrays):
        raise BankError(f"{path}: checksum mismatch: the background was modified or damaged "
                        "after it was written; build it again")
    h = json.loads(header.decode("utf-8"))
    if h.get("format") != FORMAT or h.get("version") != VERSION:
        raise BankError(f"{path}: format {h.get('format')!r} version {h.get('version')!r} is "
                        f"not {FORMAT!r} version {VERSION}")
    return Background(arrays["embeddings"], float(h["hours"]), h["source"], h["fingerprint"],
                      arrays["starts"], arrays["segments"], arrays["levels"],
                      float(h["window"]), float(h["hop"]), h.get("features", ""),
                      h.get("cohort_level"), h.get("cohort_norm"))
