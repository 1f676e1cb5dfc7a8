"""The DTW baseline: the compiled code against a plain-Python table, hand-checked cases, DTW's
invariances, and 1-NN accuracy on a toy that only time warping can solve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kws_proto.data.dataset import Clip, Manifest
from kws_proto.data.episodes import SILENCE, Episode, EpisodeSampler, fixed_episodes
from kws_proto.errors import ConfigError
from kws_proto.eval.dtw import (
    cmvn,
    dtw_distance,
    dtw_score_sets,
    dtw_scores,
    episode_distances,
    pair_distances,
)


def reference_dtw(a, b, metric="cosine", band=None, norm="path"):
    """The DTW definition written out as a full table in plain Python (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if metric == "cosine":
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
    n, m = len(a), len(b)

    def cost(i, j):
        if metric == "cosine":
            return max(1.0 - float(a[i] @ b[j]), 0.0)
        return float(np.sqrt(np.sum((a[i] - b[j]) ** 2)))

    def inside(i, j):
        return band is None or abs(i * (m - 1) - j * (n - 1)) <= band * max(n - 1, m - 1)

    inf = float("inf")
    total = [[inf] * m for _ in range(n)]  # best accumulated cost ending at (i, j)
    length = [[0] * m for _ in range(n)]  # cells on that path
    for i in range(n):
        for j in range(m):
            if not inside(i, j):
                continue
            c = cost(i, j)
            if i == j == 0:
                total[0][0], length[0][0] = (c if norm == "path" else 2 * c), 1
                continue
            # predecessors in tie order: diagonal, (i-1, j), (i, j-1); (step weight, cell)
            w_diag = 1.0 if norm == "path" else 2.0
            options = [(w_diag, i - 1, j - 1), (1.0, i - 1, j), (1.0, i, j - 1)]
            best = None
            for w, pi, pj in options:
                if pi < 0 or pj < 0 or total[pi][pj] == inf:
                    continue
                cand = total[pi][pj] + w * c
                if best is None or cand < best[0]:
                    best = (cand, length[pi][pj] + 1)
            if best is not None:
                total[i][j], length[i][j] = best
    end = total[n - 1][m - 1]
    if end == inf:
        return inf
    return end / (length[n - 1][m - 1] if norm == "path" else n + m)


@pytest.mark.parametrize("norm", ["path", "symmetric"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_compiled_dtw_matches_reference(metric, norm):
    rng = np.random.default_rng(1)
    for trial in range(40):
        n, m = rng.integers(1, 13, size=2)
        a = rng.standard_normal((n, 3))
        b = rng.standard_normal((m, 3))
        band = None if trial % 2 else int(rng.integers(0, 4))
        got = dtw_distance(a, b, metric, band=band, norm=norm)
        assert got == pytest.approx(reference_dtw(a, b, metric, band, norm), rel=1e-5, abs=1e-6)


def test_band_zero_can_leave_no_path_but_one_always_leaves_one():
    for n, m in [(2, 3), (3, 5), (7, 4), (1, 6), (9, 9)]:
        a, b = np.ones((n, 2)), np.ones((m, 2))
        # cosine cost of equal unit vectors: float32 rounding of 1 - a.b, a few 1e-7 per frame
        # (fastmath: the summation order follows the CPU's vector width), hence abs=1e-5
        assert dtw_distance(a, b, band=1) == pytest.approx(0.0, abs=1e-5)
        assert (dtw_distance(a, b, band=0) == np.inf) == (n != m and min(n, m) > 1)


def test_agrees_with_librosa_dtw():
    """librosa's DTW (unit step weights, no normalisation, its own backtracked path) is an
    independent implementation of the same recursions."""
    import librosa

    rng = np.random.default_rng(6)
    for _ in range(10):
        n, m = rng.integers(2, 20, size=2)
        a, b = rng.standard_normal((n, 5)), rng.standard_normal((m, 5))
        D, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="cosine")  # [d, frames] inputs
        assert dtw_distance(a, b, "cosine") == pytest.approx(D[-1, -1] / len(path), rel=1e-5)
        # diagonal weight 2 gives the symmetric form, except that librosa weighs the first cell 1
        D = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean", backtrack=False,
                                 weights_mul=np.array([2.0, 1.0, 1.0]))
        first = np.linalg.norm(a[0] - b[0])
        assert dtw_distance(a, b, "euclidean", norm="symmetric") == pytest.approx(
            (D[-1, -1] + first) / (n + m), rel=1e-5)


def test_hand_checked_one_dimensional_case():
    # |a_i - b_j| table for a = (0, 2, 4), b = (0, 4):   [[0, 4], [2, 2], [4, 0]].
    # Cheapest path with unit steps: (0,0) (1,0) (2,1) or (0,0) (1,1) (2,1): 0 + 2 + 0 over 3 cells.
    # Symmetric weights: (0,0) -> (1,0) -> (2,1) costs 2*0 + 2 + 2*0 = 2, over n + m = 5.
    a, b = np.array([[0.0], [2.0], [4.0]]), np.array([[0.0], [4.0]])
    assert dtw_distance(a, b, "euclidean", norm="path") == pytest.approx(2 / 3)
    assert dtw_distance(a, b, "euclidean", norm="symmetric") == pytest.approx(2 / 5)


def test_band_forbids_the_warp_it_excludes():
    # b is a delayed by one frame: a one-frame warp aligns them exactly; band 0 forces the
    # diagonal, whose costs are 0, 5, 5, 0.
    a = np.array([[0.0], [5.0], [0.0], [0.0]])
    b = np.array([[0.0], [0.0], [5.0], [0.0]])
    assert dtw_distance(a, b, "euclidean") == 0.0
    assert dtw_distance(a, b, "euclidean", band=1) == 0.0
    assert dtw_distance(a, b, "euclidean", band=0) == pytest.approx(10 / 4)
    assert dtw_distance(a, b, "euclidean", band=0, norm="symmetric") == pytest.approx(20 / 8)


@pytest.mark.parametrize("norm", ["path", "symmetric"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_symmetric_and_zero_on_identical(metric, norm):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((17, 5)), rng.standard_normal((11, 5))
    assert dtw_distance(a, b, metric, norm=norm) == pytest.approx(
        dtw_distance(b, a, metric, norm=norm), rel=1e-6)
    assert dtw_distance(a, b, metric, norm=norm) > 0.05
    assert dtw_distance(a, a, metric, norm=norm) == pytest.approx(0.0, abs=1e-5)  # float32 cosine


def test_ignores_time_stretch_and_cosine_ignores_loudness():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((12, 6))
    stretched = np.repeat(a, rng.integers(1, 4, size=12), axis=0)  # frames repeated 1-3 times
    assert len(stretched) > len(a)
    for metric in ("cosine", "euclidean"):
        assert dtw_distance(a, stretched, metric) == pytest.approx(0.0, abs=1e-5)  # float32 cosine
    assert dtw_distance(a, 3.0 * stretched, "cosine") == pytest.approx(0.0, abs=1e-5)
    assert dtw_distance(a, 3.0 * stretched, "euclidean") > 1.0
    # the same comparison without warping (frames resampled to equal length) is not zero
    idx = np.round(np.linspace(0, len(stretched) - 1, len(a))).astype(int)
    frame_by_frame = 1 - np.sum(a * stretched[idx], 1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(stretched[idx], axis=1))
    assert frame_by_frame.mean() > 0.05


def _warped_toy(n_classes=5, clips_per_class=12, frames=40, seed=0):
    """Each class says the same four 'phones' (orthonormal directions) in its own order, each
    lasting 2-7 frames after 1-5 frames of 'silence' (a fifth direction) and padded with it.
    Only the order tells the classes apart, and it shifts in time from clip to clip."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((8, 8)))[0][:5]  # [5, 8] orthonormal rows
    phones, silence = basis[:4], basis[4]
    orders = [(0, 1, 2, 3), (1, 0, 2, 3), (0, 2, 1, 3), (3, 2, 1, 0), (0, 1, 3, 2)][:n_classes]
    X, clips = [], []
    for c, order in enumerate(orders):
        for i in range(clips_per_class):
            seq = [silence] * int(rng.integers(1, 6))
            for p in order:
                seq += [phones[p]] * int(rng.integers(2, 8))
            seq += [silence] * (frames - len(seq))
            X.append(np.asarray(seq) + 0.03 * rng.standard_normal((frames, 8)))
            clips.append(Clip(f"w{c}/{i}.wav", f"w{c}", f"s{i}"))
    return np.asarray(X, np.float32), Manifest(Path("toy"), clips)


@pytest.mark.parametrize("metric,norm", [("cosine", "path"), ("euclidean", "path"),
                                         ("cosine", "symmetric")])
def test_dtw_one_nn_is_perfect_on_time_warped_toy(metric, norm):
    X, manifest = _warped_toy()
    episodes = fixed_episodes(EpisodeSampler(manifest, manifest.keywords, 5, 1, 5, seed=0), 30)
    scores = dtw_scores(X, episodes, metric, norm=norm)
    assert scores.accuracies.shape == (30,)
    assert scores.summary.mean == 1.0
    # the toy needs the warping: the same 1-NN without it (frame by frame) makes mistakes
    wrong = 0
    for e in episodes:
        s, q = X[e.support[:, 0]], X[e.query.ravel()]  # [5, T, d], [25, T, d]
        d = np.linalg.norm(q[:, None] - s[None], axis=-1).sum(-1)  # [25, 5]
        wrong += int(np.sum(d.argmin(1) != np.repeat(np.arange(5), e.n_query)))
    assert wrong > 0


def test_scores_agree_with_per_episode_distances_and_rules():
    rng = np.random.default_rng(4)
    X, manifest = _warped_toy(clips_per_class=10, seed=1)
    X = X + 0.5 * rng.standard_normal(X.shape).astype(np.float32)  # noisy: some errors
    episodes = fixed_episodes(EpisodeSampler(manifest, manifest.keywords, 4, 3, 4, seed=2), 6)
    for rule, reduce in (("nearest", np.min), ("mean", np.mean)):
        scores = dtw_scores(X, episodes, rule=rule)
        for e, y, p in zip(episodes, scores.labels, scores.predictions):
            D = episode_distances(X, e)  # [16, 4, 3]
            assert D.shape == (16, 4, 3)
            np.testing.assert_array_equal(y, np.repeat(np.arange(4), 4))
            np.testing.assert_array_equal(p, reduce(D, axis=2).argmin(axis=1))
            q, s = e.query.ravel()[5], e.support[2, 1]
            # the parallel batch kernel and the single one: float32 fastmath costs, summed in
            # another order where numba vectorises them otherwise
            assert D[5, 2, 1] == pytest.approx(dtw_distance(X[q], X[s]), rel=1e-5)
        np.testing.assert_allclose(scores.accuracies, (scores.labels == scores.predictions).mean(1))
    assert 0 < dtw_scores(X, episodes).summary.mean < 1  # the noise leaves something to decide


def test_score_sets_share_pairs_and_equal_each_list_scored_alone():
    rng = np.random.default_rng(6)
    X, manifest = _warped_toy(clips_per_class=6, seed=3)
    X = X + 0.6 * rng.standard_normal(X.shape).astype(np.float32)  # noisy: some errors
    cells = [fixed_episodes(EpisodeSampler(manifest, manifest.keywords, w, k, 2, seed=w * k), 8)
             for w, k in ((2, 1), (4, 2), (5, 3))]  # cells of one grid: many pairs in common
    together = dtw_score_sets(X, cells, rule="mean")
    assert len(together) == 3
    for eps, t in zip(cells, together):
        alone = dtw_scores(X, eps, rule="mean")
        np.testing.assert_array_equal(t.predictions, alone.predictions)
        np.testing.assert_array_equal(t.labels, alone.labels)
        np.testing.assert_array_equal(t.accuracies, alone.accuracies)
    assert 0 < np.mean([t.summary.mean for t in together]) < 1  # the noise leaves errors
    with pytest.raises(ConfigError, match="episode list 1"):
        dtw_score_sets(X, [cells[0], []])


def test_cmvn_normalises_each_coefficient_over_time():
    rng = np.random.default_rng(5)
    X = rng.normal(3.0, 2.0, size=(4, 30, 6))
    Y = cmvn(X)
    np.testing.assert_allclose(Y.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(Y.std(axis=1), 1.0, atol=1e-4)


def test_bad_input_is_named():
    a = np.ones((4, 3))
    with pytest.raises(ConfigError, match="metric='manhattan'"):
        dtw_distance(a, a, metric="manhattan")
    with pytest.raises(ConfigError, match="band=-1"):
        dtw_distance(a, a, band=-1)
    with pytest.raises(ConfigError, match="norm='mean'"):
        dtw_distance(a, a, norm="mean")
    with pytest.raises(ConfigError, match="b has shape"):
        dtw_distance(a, np.ones(4))
    with pytest.raises(ConfigError, match="coefficients"):
        dtw_distance(a, np.ones((4, 2)))
    with pytest.raises(ConfigError, match="NaN"):
        dtw_distance(a, np.full((2, 3), np.nan))

    X, manifest = _warped_toy(n_classes=2, clips_per_class=4)
    episodes = fixed_episodes(EpisodeSampler(manifest, manifest.keywords, 2, 1, 1), 2)
    with pytest.raises(ConfigError, match="rule='median'"):
        dtw_scores(X, episodes, rule="median")
    with pytest.raises(ConfigError, match="no episodes"):
        dtw_scores(X, [])
    with pytest.raises(ConfigError, match=r"features hold rows 0\.\.3"):
        dtw_scores(X[:4], episodes)
    silence = Episode(0, ("w0", "_silence_"), [[0], [SILENCE]], [[1], [SILENCE]])
    with pytest.raises(ConfigError, match="silence"):
        dtw_scores(X, [silence])
    with pytest.raises(ConfigError, match=r"b holds rows outside 0\.\.7"):
        pair_distances(X, [0, 1], [2, 8])
    with pytest.raises(ConfigError, match="equal 1-D"):
        pair_distances(X, [0, 1], [2])
