"""Nearest-prototype scores of fixed episodes on a stored embedding table (kws_proto.model.scoring)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from kws_proto.data.episodes import UNKNOWN_CLASS, Episode
from kws_proto.model.protonet import prototypes, squared_distances
from kws_proto.model.scoring import prototype_distances, score_episodes


def _episode(index, n_way, k_shot, n_query, rng, n_rows, classes=None):
    rows = rng.permutation(n_rows)[: n_way * (k_shot + n_query)].reshape(n_way, -1)
    classes = classes or tuple(f"w{i}" for i in range(n_way))
    return Episode(index, classes, rows[:, :k_shot], rows[:, k_shot:])


def test_distances_match_the_training_loss_function_far_from_the_origin():
    rng = np.random.default_rng(0)
    table = (50.0 + rng.standard_normal((60, 32))).astype(np.float32)  # large common offset
    e = _episode(0, 4, 3, 5, rng, 60)
    d, y = prototype_distances(table, e)
    protos = prototypes(tf.constant(table[e.support]))
    expected = squared_distances(tf.constant(table[e.query].reshape(20, 32)), protos).numpy()
    assert d.shape == (20, 4)
    np.testing.assert_allclose(d, expected, rtol=1e-4, atol=1e-3)  # values ~64: float32 rounding
    np.testing.assert_array_equal(y, np.repeat(np.arange(4), 5))


def test_known_only_drops_the_unknown_prototype_and_needs_that_class():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((40, 8)).astype(np.float32)
    e = _episode(0, 3, 2, 4, rng, 40, classes=("a", "b", UNKNOWN_CLASS))
    d_all, _ = prototype_distances(table, e)
    d_known, y = prototype_distances(table, e, known_only=True)
    assert d_known.shape == (12, 2)
    np.testing.assert_allclose(d_known, d_all[:, :2], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(y, np.repeat(np.arange(3), 4))
    closed = _episode(1, 3, 2, 4, rng, 40)
    with pytest.raises(ValueError, match="episode 1 has no '_unknown_' class"):
        prototype_distances(table, closed, known_only=True)


def test_each_query_goes_to_its_nearest_prototype():
    # three classes on the axes of R^3; query 1 of class 0 is placed next to class 2
    centres = np.eye(3, dtype=np.float32) * 10.0
    table = np.repeat(centres, 4, axis=0) + 0.1 * np.arange(12, dtype=np.float32)[:, None]
    table[1] = centres[2] + 0.5  # row 1: a clip of class 0 that sounds like class 2
    e = Episode(0, ("a", "b", "c"), [[0, 2], [4, 5], [8, 9]], [[1, 3], [6, 7], [10, 11]])
    scores = score_episodes(table, [e, e])
    np.testing.assert_array_equal(scores.predictions[0], [2, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(scores.accuracies, [5 / 6, 5 / 6])
    np.testing.assert_array_equal(scores.labels[1], [0, 0, 1, 1, 2, 2])
