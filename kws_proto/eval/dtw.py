"""The non-learned baseline: MFCC + dynamic time warping, nearest support clip.

The classic query-by-example keyword spotter, scored on the same episodes as the learned
encoders (:func:`dtw_scores` returns the :class:`~kws_proto.model.scoring.EpisodeScores` that
:func:`~kws_proto.model.scoring.score_episodes` returns for them): a query is given the class of the
support clip at the smallest DTW distance.

DTW here
    Steps (1,0), (0,1), (1,1) from the first frame pair to the last one.  ``norm="path"`` (the
    default) finds the path of least summed frame cost, each step weighted 1, and divides that
    sum by the path's number of cells (ties prefer the diagonal step); ``norm="symmetric"`` is
    Sakoe & Chiba's symmetric form (diagonal steps weigh 2) divided by ``n + m``, which is the
    same for every path.  ``band=r`` keeps only the cells within ``r`` frames of the straight
    line between the corners (a Sakoe-Chiba band; ``|i - j| <= r`` for equal lengths).  Both
    forms are symmetric in their two sequences.  The frame cost is ``1 - cos`` (``"cosine"``) or
    the Euclidean distance (``"euclidean"``).  Compiled with numba (at first use, not cached on
    disk: the installed package may be read-only); pairs run in parallel with ``prange``.

The defaults (Euclidean frame cost on CMS MFCC -- the features the learned encoders get --,
the nearest support clip, path-length normalisation) are the setting strongest over FSDD and
Picovoice among those measured (experiments/dtw.md).  Each distinct (query, support) pair of all
the episodes is computed once (DTW is symmetric), across the lists :func:`dtw_score_sets`
scores together; speed: experiments/speed.md.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from tqdm.auto import tqdm

from kws_proto.errors import ConfigError
from kws_proto.model.scoring import EpisodeScores
from kws_proto.util.vectors import l2_normalize

METRICS = ("cosine", "euclidean")
RULES = ("nearest", "mean")
NORMS = ("path", "symmetric")
CHUNK = 1 << 16  # pairs per compiled call (progress granularity)


@njit(cache=False, nogil=True, fastmath=True)
def _frame_costs(A, B, cosine, radius, C):
    """Fill ``C [n, m]`` with frame costs inside the band (cells outside are never read)."""
    n, m, d = A.shape[0], B.shape[0], A.shape[1]
    wide = max(n - 1, m - 1)
    for i in range(n):
        for j in range(m):
            if radius >= 0 and abs(i * (m - 1) - j * (n - 1)) > radius * wide:
                continue
            s = np.float32(0.0)
            if cosine:  # rows are unit vectors already
                for k in range(d):
                    s += A[i, k] * B[j, k]
                C[i, j] = max(np.float32(1.0) - s, np.float32(0.0))
            else:
                for k in range(d):
                    t = A[i, k] - B[j, k]
                    s += t * t
                C[i, j] = np.sqrt(s)


@njit(cache=False, nogil=True)
def _accumulate(C, radius, path_norm):
    """Normalised cost of the best warping path through ``C [n, m]`` (two rolling rows)."""
    n, m = C.shape
    wide = max(n - 1, m - 1)
    prev = np.full(m + 1, np.inf)  # accumulated cost, row i-1; column 0 is the border
    cur = np.full(m + 1, np.inf)
    prev_len = np.zeros(m + 1)  # cells on the best path to each cell (path_norm only)
    cur_len = np.zeros(m + 1)
    prev[0] = 0.0
    for i in range(1, n + 1):
        cur[0] = np.inf
        for j in range(1, m + 1):
            if radius >= 0 and abs((i - 1) * (m - 1) - (j - 1) * (n - 1)) > radius * wide:
                cur[j] = np.inf
                continue
            c = np.float64(C[i - 1, j - 1])
            if path_norm:
                best, length = prev[j - 1], prev_len[j - 1]  # diagonal first: wins ties
                if prev[j] < best:
                    best, length = prev[j], prev_len[j]
                if cur[j - 1] < best:
                    best, length = cur[j - 1], cur_len[j - 1]
                cur[j] = best + c
                cur_len[j] = length + 1.0
            else:
                cur[j] = min(prev[j - 1] + 2.0 * c, min(prev[j], cur[j - 1]) + c)
        prev, cur = cur, prev
        prev_len, cur_len = cur_len, prev_len
    if prev[m] == np.inf:  # a band of 0 can leave no path between unequal lengths
        return np.inf
    return prev[m] / (prev_len[m] if path_norm else n + m)


@njit(cache=False, nogil=True)
def _dtw(A, B, cosine, radius, path_norm):
    C = np.empty((A.shape[0], B.shape[0]), np.float32)
    _frame_costs(A, B, cosine, radius, C)
    return _accumulate(C, radius, path_norm)


@njit(parallel=True, cache=False)
def _dtw_pairs(X, a, b, cosine, radius, path_norm):
    out = np.empty(a.shape[0])
    for p in prange(a.shape[0]):
        out[p] = _dtw(X[a[p]], X[b[p]], cosine, radius, path_norm)
    return out


def _check(metric: str, band, norm: str) -> int:
    """Validate the options; the band radius as the compiled code takes it (-1: none)."""
    if metric not in METRICS:
        raise ConfigError(f"metric={metric!r} must be one of {METRICS}")
    if norm not in NORMS:
        raise ConfigError(f"norm={norm!r} must be one of {NORMS}")
    if band is None:
        return -1
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or band < 0:
        raise ConfigError(f"band={band!r} must be a non-negative integer (frames) or None")
    return int(band)


def _frames(X: np.ndarray, metric: str) -> np.ndarray:
    """float32 C-contiguous frames; unit-length rows for the cosine cost (a zero frame stays
    zero, so its cost to any frame is 1)."""
    X = np.asarray(X, dtype=np.float32)
    if metric == "cosine":
        X = l2_normalize(X)
    return np.ascontiguousarray(X)


def cmvn(features: np.ndarray) -> np.ndarray:
    """Per-clip mean and variance normalisation of every coefficient over time.

    Parameters
    ----------
    features : np.ndarray [shape=(..., frames, n_mfcc)]

    Returns
    -------
    normalised : np.ndarray [shape=(..., frames, n_mfcc), dtype=float32]
    """
    X = np.asarray(features, dtype=np.float32)
    sd = np.maximum(X.std(axis=-2, keepdims=True), np.float32(1e-8))
    return (X - X.mean(axis=-2, keepdims=True)) / sd


def dtw_distance(a, b, metric: str = "euclidean", band: int | None = None,
                 norm: str = "path") -> float:
    """DTW distance between two feature sequences (see the module docstring).

    Parameters
    ----------
    a : np.ndarray [shape=(n, d)]
    b : np.ndarray [shape=(m, d)]
        Frames in rows, e.g. ``[frames, n_mfcc]`` MFCC.
    metric : {"cosine", "euclidean"}
        Frame cost: ``1 - cosine similarity`` or Euclidean distance.
    band : int >= 0 or None
        Sakoe-Chiba radius in frames around the straight line between the corners; None: no
        band.  A band of 0 can leave no path between unequal lengths (distance ``inf``); a band
        of 1 or more always leaves one.
    norm : {"path", "symmetric"}
        Divide by the best path's length, or use diagonal weight 2 and divide by ``n + m``.

    Returns
    -------
    distance : float >= 0
        0 for identical sequences, and for a sequence and a copy with repeated frames (the
        cosine cost also ignores loudness: scaled frames cost nothing).

    Raises
    ------
    ConfigError
        Empty, non-2-D, non-finite or differently wide sequences, or a bad option.
    """
    radius = _check(metric, band, norm)
    A, B = (np.asarray(x, dtype=np.float32) for x in (a, b))
    for name, x in (("a", A), ("b", B)):
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ConfigError(f"dtw_distance: {name} has shape {x.shape}; "
                              f"need [frames >= 1, d >= 1]")
        if not np.all(np.isfinite(x)):
            raise ConfigError(f"dtw_distance: {name} holds NaN or infinite values")
    if A.shape[1] != B.shape[1]:
        raise ConfigError(f"dtw_distance: a has {A.shape[1]} coefficients per frame, "
                          f"b has {B.shape[1]}")
    return float(_dtw(_frames(A, metric), _frames(B, metric), metric == "cosine", radius,
                      norm == "path"))


def pair_distances(features, a, b, metric: str = "euclidean", band: int | None = None,
                   norm: str = "path", progress: bool = False) -> np.ndarray:
    """DTW distances between clips ``a[p]`` and ``b[p]`` of ``features``, in parallel.

    Parameters
    ----------
    features : np.ndarray [shape=(n_clips, frames, d)]
    a, b : array-like of int [shape=(P,)]
        Row indices into ``features``.
    metric, band, norm
        As in :func:`dtw_distance`.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    distances : np.ndarray [shape=(P,), dtype=float64]
    """
    radius = _check(metric, band, norm)
    if np.ndim(features) != 3:
        raise ConfigError(f"pair_distances: features of shape {np.shape(features)} must be "
                          f"[n_clips, frames, d]")
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ConfigError(f"pair_distances: a {a.shape} and b {b.shape} must be equal 1-D arrays")
    for name, x in (("a", a), ("b", b)):  # the compiled code does not check bounds
        if x.size and (x.min() < 0 or x.max() >= len(features)):
            raise ConfigError(f"pair_distances: {name} holds rows outside 0..{len(features) - 1}")
    X = _frames(features, metric)
    out = np.empty(len(a))
    with tqdm(total=len(a), unit="pair", desc="dtw", disable=not progress) as bar:
        for s in range(0, len(a), CHUNK):
            out[s : s + CHUNK] = _dtw_pairs(X, a[s : s + CHUNK], b[s : s + CHUNK],
                                            metric == "cosine", radius, norm == "path")
            bar.update(len(out[s : s + CHUNK]))
    return out


def episode_distances(features, episode, metric: str = "euclidean", band: int | None = None,
                      norm: str = "path") -> np.ndarray:
    """Every query-to-support DTW distance of one episode.

    Returns
    -------
    distances : np.ndarray [shape=(n_way * n_query, n_way, k_shot)]
        Queries in class-major order (the order of ``EpisodeScores.labels``).
    """
    rows, X = _episode_features(features, [episode])
    q = np.searchsorted(rows, episode.query.ravel())
    s = np.searchsorted(rows, episode.support.ravel())
    d = pair_distances(X, np.repeat(q, len(s)), np.tile(s, len(q)), metric, band, norm)
    return d.reshape(len(q), *episode.support.shape)  # [queries, n_way, k_shot]


def dtw_scores(features, episodes, metric: str = "euclidean", rule: str = "nearest",
               band: int | None = None, norm: str = "path",
               progress: bool = False) -> EpisodeScores:
    """Accuracy of the DTW baseline on every episode.

    Parameters
    ----------
    features : np.ndarray [shape=(n_clips, frames, d)]
        The dataset's feature cache (a memmap is fine: only the episodes' rows are read).  The
        defaults measured strongest on CMS MFCC, ``FeatureConfig(normalize="mean")`` (the
        default front end, the learned encoders' features).
    episodes : list of Episode
    metric : {"cosine", "euclidean"}
    rule : {"nearest", "mean"}
        A query's distance to a class: to its nearest support clip, or the mean over them.
    band, norm
        As in :func:`dtw_distance`.
    progress : bool

    Returns
    -------
    scores : EpisodeScores
        As :func:`kws_proto.eval.evaluate.score_episodes` gives for a learned encoder.

    Raises
    ------
    ConfigError
        A bad option, no episodes, or a row outside ``features`` (e.g. a silence sentinel).
    """
    return dtw_score_sets(features, [episodes], metric, rule, band, norm, progress)[0]


def dtw_score_sets(features, episode_sets, metric: str = "euclidean", rule: str = "nearest",
                   band: int | None = None, norm: str = "path",
                   progress: bool = False) -> list[EpisodeScores]:
    """:func:`dtw_scores` of several episode lists (e.g. the cells of an evaluation grid) at
    once: a (query, support) pair that several lists share is computed once, so the scores are
    those of :func:`dtw_scores` on each list, for the cost of their distinct pairs.

    Parameters
    ----------
    features : np.ndarray [shape=(n_clips, frames, d)]
    episode_sets : list of (list of Episode)
    metric, rule, band, norm, progress
        As in :func:`dtw_scores`.

    Returns
    -------
    scores : list of EpisodeScores, one per list of ``episode_sets``

    Raises
    ------
    ConfigError
        As :func:`dtw_scores`, naming the list (its index) that has no episodes.
    """
    if rule not in RULES:
        raise ConfigError(f"rule={rule!r} must be one of {RULES}")
    _check(metric, band, norm)
    for i, episodes in enumerate(episode_sets):
        if len(episodes) == 0:
            raise ConfigError(f"dtw: no episodes to score (episode list {i})")
    rows, X = _episode_features(features, [e for eps in episode_sets for e in eps])
    n = len(rows)
    keys = []  # per list, per episode: pair key lo * n + hi of every (query, support), query-major
    for episodes in episode_sets:
        keys.append([])
        for e in episodes:
            q = np.searchsorted(rows, e.query.ravel())  # [Q]
            s = np.searchsorted(rows, e.support.ravel())  # [S]
            lo = np.minimum(q[:, None], s[None, :])  # [Q, S]
            keys[-1].append((lo * n + np.maximum(q[:, None], s[None, :])).ravel())
    unique = np.unique(np.concatenate([k for ks in keys for k in ks]))
    dist = pair_distances(X, unique // n, unique % n, metric, band, norm, progress)
    return [_nearest_class(episodes, [dist[np.searchsorted(unique, k)] for k in ks], rule)
            for episodes, ks in zip(episode_sets, keys)]


def _nearest_class(episodes, distances, rule: str) -> EpisodeScores:
    """Scores of ``episodes`` from each one's query-major (query, support) ``distances``."""
    accs, labels, preds = [], [], []
    for e, d in zip(episodes, distances):
        n_way, n_query = e.query.shape
        D = d.reshape(n_way * n_query, n_way, e.k_shot)
        to_class = D.min(axis=2) if rule == "nearest" else D.mean(axis=2)  # [queries, n_way]
        y = np.repeat(np.arange(n_way), n_query)
        p = to_class.argmin(axis=1)
        accs.append(float((p == y).mean()))
        labels.append(y)
        preds.append(p)
    return EpisodeScores(np.asarray(accs), np.asarray(labels), np.asarray(preds))


def _episode_features(features, episodes) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct manifest rows of ``episodes`` and their features, checked.

    Returns
    -------
    rows : np.ndarray [shape=(n,), dtype=int64]
    X : np.ndarray [shape=(n, frames, d)]
        ``features[rows]``, read once (a memmap is read at these rows only).
    """
    if np.ndim(features) != 3:
        raise ConfigError(f"dtw: features of shape {np.shape(features)} must be "
                          f"[n_clips, frames, d]")
    if len(episodes) == 0:
        raise ConfigError("dtw: no episodes to score")
    rows = np.unique(np.concatenate([np.concatenate([e.support.ravel(), e.query.ravel()])
                                     for e in episodes]))
    if rows[0] < 0 or rows[-1] >= len(features):
        raise ConfigError(
            f"dtw: episode rows span {rows[0]}..{rows[-1]} but features hold rows "
            f"0..{len(features) - 1} (a synthetic silence class, row -1, has no features and "
            f"is not supported)")
    X = np.asarray(features[rows])  # [n, frames, d]; memmap fancy index: sorted rows
    if not np.all(np.isfinite(X)):
        raise ConfigError("dtw: the episodes' features hold NaN or infinite values")
    return rows, X
