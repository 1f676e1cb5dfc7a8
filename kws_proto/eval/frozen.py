"""Score a frozen pretrained embedding on the project's fixed episodes: ``kws-proto eval NAME``.

The names and their tables: the Google speech embedding's (:data:`kws_proto.eval.gse.GSE_MODELS`),
the package's head on it (``gse-head``, :func:`kws_proto.model.gse_head.head_table`) and
EfficientWord-Net's (:data:`kws_proto.eval.ewn.EWN_MODELS`).  Each goes through the same
:func:`~kws_proto.eval.grid.eval_episodes` (same seed, data and classes: the same episodes as
``kws-proto eval default``) and the same nearest-prototype rule
(:func:`~kws_proto.model.scoring.score_episodes`, squared Euclidean distance) as the project's
encoders; only the embedding table differs.
"""

from __future__ import annotations

import numpy as np

from kws_proto.data.dataset import Manifest
from kws_proto.errors import ConfigError
from kws_proto.eval.ewn import EWN_MODELS, ewn_table
from kws_proto.eval.grid import episode_rows, score_grid
from kws_proto.eval.gse import GSE_MODELS, gse_table, open_source
from kws_proto.model.gse_head import head_table

HEAD_MODELS = {"gse-head": "the package's trained head on the Google speech embedding's 3 windows"}
FROZEN_MODELS = {**GSE_MODELS, **HEAD_MODELS, **EWN_MODELS}  # name -> what it embeds
TABLES = {**{n: gse_table for n in GSE_MODELS}, **{n: head_table for n in HEAD_MODELS},
          **{n: ewn_table for n in EWN_MODELS}}


def is_frozen(name) -> bool:
    """Whether ``name`` (the ``run_dir`` of ``kws-proto eval``) names a frozen embedding."""
    return str(name) in FROZEN_MODELS


def frozen_table(name, manifest: Manifest, progress: bool = True, rows=None,
                 memo: dict | None = None) -> np.ndarray:
    """``[n_clips, d]``: the embedding table of frozen embedding ``name``, by manifest row (with
    ``rows``, when they are few and nothing is cached, only those rows: the others are zero)."""
    name = str(name)
    if name not in TABLES:
        raise ValueError(f"{name!r} is not one of {sorted(TABLES)}")
    return TABLES[name](name, manifest, progress=progress, rows=rows, memo=memo)


def evaluate_frozen(name, settings, data_dir, classes=None, seed: int = 0,
                    speaker_disjoint: bool = False, progress: bool = True, unknown=()) -> list[dict]:
    """:func:`~kws_proto.eval.evaluate.evaluate_run` for a frozen embedding: the same rows, the
    same episodes.  ``data_dir`` is required (a frozen embedding has no dataset of its own)."""
    if data_dir is None:
        raise ConfigError(f"`eval {name}` needs --data: a frozen embedding has no dataset of its own")
    source = open_source(data_dir, speaker_disjoint)
    classes = tuple(classes) if classes else source.splits.test
    memo: dict = {}  # the episodes' rows only, when they are few of a large corpus

    def table_for(episodes):
        return frozen_table(name, source.manifest, progress, rows=episode_rows(episodes), memo=memo)

    return score_grid(table_for, source, classes, settings, seed, unknown)
