"""Time of the DTW baseline on 1,000 5-way 5-shot 15-query episodes, and what its parts buy.

The clips are random features of the real shape (51 frames x 40 MFCC, 10 keywords x 300 clips,
the size of FSDD): DTW does the same work whatever the values.  Printed: the compile time at
first use, the distinct pairs against all pairs of the episodes and the full pairwise matrix,
the wall time of :func:`kws_proto.eval.dtw.dtw_scores` for the 1,000 episodes, and two ratios
measured side by side in interleaved rounds: all cores against one (numba ``prange``), and the
Sakoe-Chiba band of 10 frames against none; and the speed of ``librosa.sequence.dtw`` called
pair by pair, for comparison.  Run: ``python -m benchmarks.run bench_dtw``.

``python -m benchmarks.bench_dtw --accuracy DIR`` instead prints the accuracy of the baseline's
settings on a prepared dataset ``DIR`` (all its keywords, default front end, 1,000 fixed episodes
of seed 0, 15 queries), each paired with the default on the same episodes: the table in the
docstring of :mod:`kws_proto.eval.dtw` (several minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

N_WAY, K_SHOT, N_QUERY, EPISODES = 5, 5, 15, 1000
KEYWORDS, CLIPS_PER_KEYWORD, FRAMES, N_MFCC = 10, 300, 51, 40
RATIO_PAIRS = 20_000  # pairs per timed call in the ratio rounds
LIBROSA_PAIRS = 500


def _episodes():
    from kws_proto.data.dataset import Clip, Manifest
    from kws_proto.data.episodes import EpisodeSampler, fixed_episodes

    clips = [Clip(f"{k}/{i}.wav", f"kw{k}", f"s{i % 6}") for k in range(KEYWORDS)
             for i in range(CLIPS_PER_KEYWORD)]
    manifest = Manifest(Path("bench"), clips)
    sampler = EpisodeSampler(manifest, manifest.keywords, N_WAY, K_SHOT, N_QUERY, seed=0)
    return fixed_episodes(sampler, EPISODES)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _librosa_pairs(features, a, b) -> None:
    """librosa's DTW pair by pair, with the same cost and path normalisation as our default."""
    import librosa

    for i, j in zip(a, b):
        D, path = librosa.sequence.dtw(X=features[i].T, Y=features[j].T, metric="euclidean")
        D[-1, -1] / len(path)


def main(rounds: int = 3) -> dict[str, float]:
    """Print the timings; return them as ``{name: seconds}`` (per pair for the ratio rounds)."""
    import numba

    from kws_proto.eval.dtw import dtw_distance, dtw_scores, pair_distances

    rng = np.random.default_rng(0)
    n_clips = KEYWORDS * CLIPS_PER_KEYWORD
    features = rng.standard_normal((n_clips, FRAMES, N_MFCC)).astype(np.float32)
    compile_s = _timed(lambda: (dtw_distance(features[0], features[1]),
                                pair_distances(features, [0], [1])))
    episodes = _episodes()

    per_episode = N_WAY * N_QUERY * N_WAY * K_SHOT
    keys = set()
    for e in episodes:
        q, s = e.query.ravel(), e.support.ravel()
        keys.update(zip(np.minimum.outer(q, s).ravel().tolist(),
                        np.maximum.outer(q, s).ravel().tolist()))
    rows = np.unique(np.concatenate([np.r_[e.query.ravel(), e.support.ravel()] for e in episodes]))
    full = len(rows) * (len(rows) - 1) // 2

    cpu0 = time.process_time()
    total_s = _timed(lambda: dtw_scores(features, episodes))
    cpu_s = time.process_time() - cpu0

    a, b = rng.integers(0, n_clips, (2, RATIO_PAIRS))
    threads = numba.get_num_threads()
    la, lb = a[:LIBROSA_PAIRS], b[:LIBROSA_PAIRS]
    _librosa_pairs(features, la[:2], lb[:2])  # compile librosa's numba kernels
    samples: dict[str, list[float]] = {"all cores": [], "one core": [], "band 10": [],
                                       "librosa": []}
    for _ in range(rounds):
        samples["librosa"].append(_timed(lambda: _librosa_pairs(features, la, lb)))
        numba.set_num_threads(threads)
        samples["all cores"].append(_timed(lambda: pair_distances(features, a, b)))
        samples["band 10"].append(_timed(lambda: pair_distances(features, a, b, band=10)))
        numba.set_num_threads(1)
        samples["one core"].append(_timed(lambda: pair_distances(features, a, b)))
    numba.set_num_threads(threads)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    per_pair = {k: v / (LIBROSA_PAIRS if k == "librosa" else RATIO_PAIRS) for k, v in med.items()}

    print(f"   {EPISODES} episodes {N_WAY}-way {K_SHOT}-shot {N_QUERY}-query over {n_clips} clips "
          f"of {FRAMES}x{N_MFCC}, {os.cpu_count()} CPU cores, numba threads {threads}")
    print(f"   compile at first use: {compile_s:.1f} s")
    print(f"   pairs: {EPISODES * per_episode:,} in the episodes, {len(keys):,} distinct "
          f"(computed), {full:,} in the full matrix of the {len(rows):,} clips used")
    print(f"   dtw_scores, {EPISODES} episodes: {total_s:.1f} s wall, {cpu_s:.1f} s CPU "
          f"({1e6 * total_s / len(keys):.1f} us wall per distinct pair)")
    print(f"   median of {rounds} interleaved rounds: {threads} threads "
          f"{1e6 * per_pair['all cores']:.1f} us/pair, 1 thread {1e6 * per_pair['one core']:.1f} "
          f"us/pair -> {med['one core'] / med['all cores']:.2f}x from prange; band 10: "
          f"{med['all cores'] / med['band 10']:.2f}x faster than no band")
    print(f"   librosa.sequence.dtw (euclidean, backtracked for the path length), pair by pair: "
          f"{1e6 * per_pair['librosa']:.0f} us/pair -> ours on 1 thread "
          f"{per_pair['librosa'] / per_pair['one core']:.1f}x faster")
    return {"compile": compile_s, "dtw_scores": total_s, "dtw_scores_cpu": cpu_s, **per_pair}


# label, features ("mfcc": un-normalised, "cms": mean-subtracted, "cmvn"), metric, rule, norm, band
SETTINGS = [
    ("euclidean, CMS MFCC, nearest, path (default)", "cms", "euclidean", "nearest", "path", None),
    ("euclidean, CMS MFCC, nearest, symmetric", "cms", "euclidean", "nearest", "symmetric", None),
    ("euclidean, CMS MFCC, mean, path", "cms", "euclidean", "mean", "path", None),
    ("euclidean, CMS MFCC, nearest, path, band 10", "cms", "euclidean", "nearest", "path", 10),
    ("cosine, CMS MFCC, nearest, path", "cms", "cosine", "nearest", "path", None),
    ("cosine, MFCC, nearest, path", "mfcc", "cosine", "nearest", "path", None),
    ("cosine, MFCC, mean, path", "mfcc", "cosine", "mean", "path", None),
    ("euclidean, MFCC, nearest, path", "mfcc", "euclidean", "nearest", "path", None),
    ("euclidean, CMVN MFCC, nearest, path", "cmvn", "euclidean", "nearest", "path", None),
    ("euclidean, CMVN MFCC, nearest, symmetric", "cmvn", "euclidean", "nearest", "symmetric",
     None),
]


def accuracy(data_dir, shots=(5, 1), n_way: int = 5, episodes: int = EPISODES,
             speaker_disjoint: bool = False) -> None:
    """Print every setting's accuracy on ``data_dir`` and its paired difference to the first."""
    from kws_proto.data.cache import feature_cache
    from kws_proto.data.dataset import load_manifest
    from kws_proto.eval.dtw import cmvn, dtw_scores
    from kws_proto.data.episodes import EpisodeSampler, fixed_episodes
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.util.stats import paired_difference

    manifest = load_manifest(data_dir)
    mfcc = np.asarray(feature_cache(manifest, FeatureConfig(normalize="none"), progress=False))
    features = {"mfcc": mfcc, "cms": mfcc - mfcc.mean(axis=1, keepdims=True), "cmvn": cmvn(mfcc)}
    print(f"   {data_dir}: {len(manifest)} clips, keywords {manifest.keywords}, "
          f"{episodes} episodes of seed 0, {N_QUERY} queries, speaker_disjoint={speaker_disjoint}")
    for k in shots:
        sampler = EpisodeSampler(manifest, manifest.keywords, n_way, k, N_QUERY, seed=0,
                                 speaker_disjoint=speaker_disjoint)
        eps = fixed_episodes(sampler, episodes)
        base = None
        for label, feats, metric, rule, norm, band in SETTINGS:
            if k == 1 and rule == "mean":
                continue  # the same as nearest with one support clip
            t0 = time.perf_counter()
            scores = dtw_scores(features[feats], eps, metric, rule, band, norm)
            base = scores.accuracies if base is None else base
            print(f"   {n_way}-way {k}-shot  {label:<46} {scores.summary}  paired "
                  f"{paired_difference(scores.accuracies, base)}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy", metavar="DIR",
                        help="print the settings' accuracy on this prepared dataset instead")
    parser.add_argument("--speaker-disjoint", action="store_true",
                        help="speaker-disjoint support and query (with --accuracy)")
    args = parser.parse_args()
    if args.accuracy:
        accuracy(args.accuracy, speaker_disjoint=args.speaker_disjoint)
    else:
        main()
    sys.exit(0)
