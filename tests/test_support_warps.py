"""experiments/support_warps.py: its scorer against the package's, and its warped embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from kws_proto.evaluate import score_episodes

from conftest import assert_close_to_scale, load_experiment_script
from test_test_time_norm import random_episodes


@pytest.fixture(scope="module")
def sw():
    return load_experiment_script("support_warps")


def test_one_table_for_both_sides_matches_the_package_scorer(sw):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(60, 8)).astype(np.float32)
    episodes = random_episodes(rng)
    ours = sw.accuracies(table, table, episodes)
    np.testing.assert_allclose(ours, score_episodes(table, episodes).accuracies, atol=1e-12)
    # prototypes come from the support table only: moving every query away changes the result
    assert not np.array_equal(sw.accuracies(table, table + rng.normal(size=table.shape) * 3, episodes), ours)


def test_warped_table_embeds_only_the_rows_asked_and_warps_them(sw):
    from kws_proto.config import ExperimentConfig, ModelConfig
    from kws_proto.evaluate import embed_rows
    from kws_proto.model_io import build_network

    cfg = ExperimentConfig(model=ModelConfig(params={"stem_filters": 4, "filters": [4, 6, 8]}))
    net = build_network(cfg)
    feats = np.random.default_rng(1).standard_normal((12, *cfg.features.shape)).astype(np.float32)
    rows = np.array([1, 4, 7])
    plain = sw.warped_table(net, feats, rows, 1.0, cfg.features)
    assert plain.shape[0] == 12 and not plain[[0, 2, 11]].any()
    assert_close_to_scale(plain[rows], embed_rows(net, feats, rows))  # other batches, same rows
    warped = sw.warped_table(net, feats, rows, 1.1, cfg.features)
    assert np.abs(warped[rows] - plain[rows]).max() > 1e-3
