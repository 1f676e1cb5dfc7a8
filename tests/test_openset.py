"""Open-set scores on hand-made embeddings where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from kws_proto.data.episodes import UNKNOWN_CLASS, Episode
from kws_proto.eval.openset import auroc, open_set_scores


def _episode(index, n_known, k, q, rng):
    rows = rng.permutation((n_known + 1) * (k + q)).reshape(n_known + 1, k + q)
    classes = tuple(f"w{i}" for i in range(n_known)) + (UNKNOWN_CLASS,)
    return Episode(index, classes, rows[:, :k], rows[:, k:])


def _table(episode, spread, unknown_far):
    """Keyword c at 10*e_c (+ noise); unknown clips far away when ``unknown_far``."""
    rng = np.random.default_rng(episode.index)
    n_known = episode.n_way - 1
    table = np.zeros((episode.support.size + episode.query.size, n_known + 1), np.float32)
    for c in range(episode.n_way):
        rows = np.concatenate([episode.support[c], episode.query[c]])
        centre = np.zeros(n_known + 1)
        centre[c] = 10.0 if (c < n_known or unknown_far) else 0.0
        table[rows] = centre + spread * rng.standard_normal((len(rows), n_known + 1))
    return table


def test_auroc_by_hand():
    # positives 3, 4 ; negatives 1, 3.5 -> pairs (3>1) (3<3.5) (4>1) (4>3.5): 3 of 4
    assert auroc(np.array([3, 4, 1, 3.5]), np.array([1, 1, 0, 0], bool)) == pytest.approx(0.75)
    assert auroc(np.array([1.0, 1.0]), np.array([1, 0], bool)) == pytest.approx(0.5)


def test_separated_unknowns_are_perfectly_rejected():
    rng = np.random.default_rng(0)
    for i in range(3):
        e = _episode(i, 3, 2, 4, rng)
        r = open_set_scores(_table(e, 0.1, unknown_far=True), [e], far=0.05)
        assert r.auroc == 1.0 and r.detection == 1.0


def test_unknowns_among_keywords_cannot_be_told_apart():
    # unknown clips sit at the origin, as close to every prototype as the keywords are to
    # each other's: with wide spread the scores overlap and AUROC falls well below 1
    rng = np.random.default_rng(1)
    eps = [_episode(i, 3, 5, 15, rng) for i in range(20)]
    aurocs = [open_set_scores(_table(e, 8.0, unknown_far=False), [e]).auroc for e in eps]
    assert np.mean(aurocs) < 0.9


def test_needs_an_unknown_class():
    rng = np.random.default_rng(0)
    e = _episode(0, 3, 2, 2, rng)
    closed = Episode(0, ("a", "b", "c", "d"), e.support, e.query)
    with pytest.raises(ValueError, match="_unknown_"):
        open_set_scores(_table(e, 0.1, True), [closed])
