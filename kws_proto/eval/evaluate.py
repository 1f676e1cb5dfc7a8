"""Scoring trained runs on fixed test episodes: accuracy as mean ± 95% CI over episodes, on the
run's own test words or any prepared dataset (the scoring itself: :mod:`kws_proto.model.scoring`)."""

from __future__ import annotations

from pathlib import Path

from data_prep.adhoc import as_dataset
from data_prep.builtin import open_eval_data  # noqa: F401  (re-exported)
from kws_proto.errors import ConfigError
from kws_proto.eval.grid import EvalSetting, eval_episodes, grid, parse_grid, score_grid  # noqa: F401
from kws_proto.eval.fusion import evaluate_fused
from kws_proto.eval.frozen import evaluate_frozen, is_frozen
from kws_proto.model.fusion import is_fusion
from kws_proto.model.loading import load_run_network
from kws_proto.model.pretrained import is_shipped
from kws_proto.model.scoring import (  # noqa: F401
    EpisodeScores,
    embed_rows,
    embedding_table,
    evaluate_episodes,
    prototype_distances,
    score_episodes,
)


def evaluate_run(
    run_dir,
    settings: list[EvalSetting],
    data_dir=None,
    classes=None,
    seed: int = 0,
    speaker_disjoint: bool = False,
    progress: bool = True,
    unknown=(),
) -> list[dict]:
    """Score a trained run on fixed test episodes for every grid setting.

    Parameters
    ----------
    run_dir : path
        A run directory with ``best.weights.h5``, ``"default"`` (the shipped encoder), or
        ``"gse"`` / ``"gse-full"``: the Google speech embedding (:mod:`kws_proto.eval.gse`;
        needs ``data_dir`` and the ``gse`` extra), ``"ewn"`` / ``"ewn-1.5s"``: EfficientWord-Net's
        (:mod:`kws_proto.eval.ewn`; needs ``data_dir`` and ``make ewn``), or a fused model's folder
        (:mod:`kws_proto.eval.fusion`; needs ``data_dir``).
    settings : list of EvalSetting
    data_dir : path or None
        A prepared dataset, or a raw keyword folder (indexed on the fly into the user cache:
        :mod:`data_prep.adhoc`); None = the run's own dataset.
    classes : sequence of str or None
        Keywords to draw episodes from; None = the dataset's test split.
    seed : int
        Draws the episodes; two runs scored with the same seed, data and classes see identical
        episodes.
    unknown : sequence of str
        Open-set words (:func:`~kws_proto.eval.grid.score_grid`).

    Returns
    -------
    rows : list of dict
        One per setting, as :func:`~kws_proto.eval.grid.score_grid` gives them.
    """
    data_dir = as_dataset(data_dir, progress) if data_dir is not None else None
    if is_frozen(run_dir):  # a frozen pretrained embedding: same episodes, same rule
        return evaluate_frozen(str(run_dir), settings, data_dir, classes, seed, speaker_disjoint,
                               progress, unknown)
    if is_fusion(run_dir):  # members' own tables, fused row by row: same episodes, same rule
        return evaluate_fused(run_dir, settings, data_dir, classes, seed, speaker_disjoint,
                              progress, unknown)
    cfg, net = load_run_network(run_dir)
    if data_dir is None and is_shipped(run_dir) and not Path(cfg.data.dataset).is_dir():
        raise ConfigError(f"`{run_dir!s}` needs --data DATASET (a prepared dataset folder) to "
                          f"score on: the shipped encoder comes without its corpus "
                          f"({cfg.data.dataset}, which `make pretrained` builds)")
    data = open_eval_data(cfg, data_dir, speaker_disjoint, progress)
    classes = tuple(classes) if classes else data.splits.test
    return score_grid(lambda episodes: embedding_table(net, data.features, episodes), data,
                      classes, settings, seed, unknown)
