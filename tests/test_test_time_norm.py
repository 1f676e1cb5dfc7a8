"""experiments/test_time_norm.py: its transforms of embeddings, on tables built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kws_proto.data.episodes import Episode

from conftest import load_experiment_script


@pytest.fixture(scope="module")
def ttn():
    return load_experiment_script("test_time_norm")


def random_episodes(rng, n_clips=60, n=25, n_way=5, k_shot=2, n_query=3):
    """Episodes over rows of a table of ``n_clips`` rows (classes are just row groups)."""
    out = []
    for i in range(n):
        rows = rng.permutation(n_clips)[: n_way * (k_shot + n_query)].reshape(n_way, k_shot + n_query)
        out.append(Episode(i, tuple(f"c{c}" for c in range(n_way)), rows[:, :k_shot], rows[:, k_shot:]))
    return out


def test_unit_blocks_scales_each_member_to_length_one(ttn):
    x = np.array([[3.0, 4.0, 0.0, 2.0], [1.0, 0.0, 5.0, 12.0]])
    y = ttn.unit_blocks(x, groups=2)
    np.testing.assert_allclose(y, [[0.6, 0.8, 0.0, 1.0], [1.0, 0.0, 5 / 13, 12 / 13]])


def _nearest_prototype_accuracy(table, e):
    """Accuracy of one episode computed here in float64, independently of the package."""
    protos = table[e.support].astype(np.float64).mean(1)  # [n_way, d]
    q = table[e.query].astype(np.float64)  # [n_way, n_query, d]
    d = ((q[:, :, None, :] - protos[None, None]) ** 2).sum(-1)  # [n_way, n_query, n_way]
    return float((d.argmin(-1) == np.arange(len(protos))[:, None]).mean())


def test_raw_is_nearest_prototype_accuracy(ttn):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(60, 8)).astype(np.float32)
    episodes = random_episodes(rng)
    ours = ttn.accuracies(table, episodes, "raw", groups=1, train_mean=np.zeros(8))
    np.testing.assert_allclose(ours, [_nearest_prototype_accuracy(table, e) for e in episodes])
    assert 0.0 < ours.mean() < 1.0  # random embeddings: neither all right nor all wrong


def test_l2_ignores_each_members_scale_and_raw_does_not(ttn):
    rng = np.random.default_rng(1)
    table = rng.normal(size=(60, 6))
    episodes = random_episodes(rng)
    scaled = table * np.repeat(rng.uniform(0.1, 10.0, size=(60, 2)), 3, axis=1)  # per row and member
    zero = np.zeros(6)
    np.testing.assert_array_equal(ttn.accuracies(table, episodes, "l2", 2, zero),
                                  ttn.accuracies(scaled, episodes, "l2", 2, zero))
    assert not np.array_equal(ttn.accuracies(table, episodes, "raw", 2, zero),
                              ttn.accuracies(scaled, episodes, "raw", 2, zero))


def test_centring_on_the_episode_removes_any_shared_offset(ttn):
    rng = np.random.default_rng(2)
    table = rng.normal(size=(60, 6))
    episodes = random_episodes(rng)
    offset = rng.normal(size=6) * 3.0
    zero = np.zeros(6)
    for t in ("support+l2", "episode+l2"):  # centred on the episode's own clips
        np.testing.assert_allclose(ttn.accuracies(table + offset, episodes, t, 2, zero),
                                   ttn.accuracies(table, episodes, t, 2, zero))
    # the training mean is subtracted before unit length, and without it the offset matters
    np.testing.assert_allclose(ttn.accuracies(table + offset, episodes, "train+l2", 2, offset),
                               ttn.accuracies(table, episodes, "l2", 2, zero))
    assert not np.array_equal(ttn.accuracies(table + offset, episodes, "l2", 2, zero),
                              ttn.accuracies(table, episodes, "l2", 2, zero))
