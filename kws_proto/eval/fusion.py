"""Score a fused model (:mod:`kws_proto.model.fusion`) on the project's fixed episodes.

``kws-proto eval FUSED_DIR --data DIR ...`` draws the same episodes as ``eval default`` and
``eval gse`` (same seed, data and classes: :func:`~kws_proto.eval.grid.eval_episodes`) and scores
them with the same nearest-prototype rule; the table is each member's own evaluation table — a
trained run's embeddings of its feature cache (:func:`~kws_proto.model.scoring.embedding_table`),
a frozen embedding's cached crop table (:func:`~kws_proto.eval.frozen.frozen_table`: the Google
speech embedding's or EfficientWord-Net's) — fused row by row with the recorded centres and weights.
"""

from __future__ import annotations

from data_prep.builtin import open_eval_data
from kws_proto.errors import CheckpointError, ConfigError
from kws_proto.eval.grid import episode_rows, score_grid
from kws_proto.eval.frozen import frozen_table
from kws_proto.eval.gse import open_source
from kws_proto.model.fusion import Fusion, load_fusion
from kws_proto.model.loading import load_run_network, weights_fingerprint
from kws_proto.model.pretrained import resolve_model
from kws_proto.model.scoring import embedding_table
from kws_proto.spot.frozen import frozen_embedder, is_frozen


def member_tables(model: str, fingerprint: str, data_dir, speaker_disjoint: bool = False,
                  progress: bool = True):
    """``(data, table_for)`` of one member on the dataset ``data_dir``: ``table_for(episodes)
    -> [n_clips, d]`` as its own ``eval`` makes it.  Raises :class:`CheckpointError` when the
    member's weights fingerprint is not ``fingerprint`` (the one its centre was taken with)."""
    if is_frozen(model):
        found = frozen_embedder(model).fingerprint
        data = open_source(data_dir, speaker_disjoint)
        memo: dict = {}  # rows embedded so far, when the episodes need few of a large corpus

        def table_for(episodes):
            return frozen_table(model, data.manifest, progress, rows=episode_rows(episodes),
                                memo=memo)
    else:
        cfg, net = load_run_network(resolve_model(model))
        found = weights_fingerprint(net.encoder)
        data = open_eval_data(cfg, data_dir, speaker_disjoint, progress)

        def table_for(episodes):
            return embedding_table(net, data.features, episodes)
    if found != fingerprint:
        raise CheckpointError(f"member {model} has weights fingerprint {found[:16]}..., its "
                              f"centre was taken with {fingerprint[:16]}...; fuse again")
    return data, table_for


def fused_tables(fusion: Fusion, data_dir, speaker_disjoint: bool = False, progress: bool = True):
    """``(data, table_for)`` of the fused model: every member's table fused row by row."""
    parts = [member_tables(m.model, m.fingerprint, data_dir, speaker_disjoint, progress)
             for m in fusion.members]
    data = parts[0][0]
    if len({len(d.manifest) for d, _ in parts}) != 1:
        raise ConfigError(f"{data_dir}: the members read manifests of different lengths")

    def table_for(episodes):
        return fusion.fuse([t(episodes) for _, t in parts])

    return data, table_for


def evaluate_fused(path, settings, data_dir, classes=None, seed: int = 0,
                   speaker_disjoint: bool = False, progress: bool = True, unknown=()) -> list[dict]:
    """:func:`~kws_proto.eval.evaluate.evaluate_run` for the fused model in folder ``path``: the
    same rows, the same episodes.  ``data_dir`` is required."""
    if data_dir is None:
        raise ConfigError(f"`eval {path}` needs --data: a fused model has no dataset of its own")
    data, table_for = fused_tables(load_fusion(path), data_dir, speaker_disjoint, progress)
    classes = tuple(classes) if classes else data.splits.test
    return score_grid(table_for, data, classes, settings, seed, unknown)
