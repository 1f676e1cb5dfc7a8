"""Fitting the embedding head (:mod:`kws_proto.model.head`) of a trained run: once, after
training, from the best weights and the run's training clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kws_proto.errors import ConfigError
from kws_proto.model.head import write_head
from kws_proto.model.loading import load_run_network
from kws_proto.model.runs import RunDir
from kws_proto.model.scoring import embed_rows


def fit_centre(net, features, rows, clips: int, seed: int) -> np.ndarray:
    """Mean embedding of ``clips`` rows drawn from ``rows`` with ``seed`` (all when fewer).

    Parameters
    ----------
    net : PrototypicalNetwork
        The bare (head-less) network with its best weights.
    features : np.ndarray [shape=(n_clips, frames, n_mfcc)]
        Un-augmented features.
    rows : array-like of int [shape=(m,)]

    Returns
    -------
    centre : np.ndarray [shape=(d,), dtype=float32]
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise ConfigError("fitting the head needs training clips; the dataset's train split is empty")
    pick = np.random.default_rng(seed).choice(rows, min(clips, rows.size), replace=False)
    return embed_rows(net, features, pick).astype(np.float64).mean(axis=0).astype(np.float32)


def fit_head(run_root: str | os.PathLike, data) -> Path | None:
    """Fit the head that the run's ``config.yaml`` asks for and write ``RUN/head.npz``.

    The centre is the mean embedding (best weights, ``training=False``) of ``head.clips``
    clips of the training split, drawn with ``train.seed``.  With ``head.kind: none`` any
    stale ``head.npz`` is removed and nothing is written.

    Parameters
    ----------
    run_root : path
        A run directory with ``best.weights.h5``.
    data : ExperimentData
        The run's dataset, opened by the caller (its manifest, split and un-augmented
        ``features`` are read).

    Returns
    -------
    path : Path or None
        The written ``head.npz``, or None for ``kind: none``.
    """
    path = RunDir(Path(run_root)).head_path
    cfg, net = load_run_network(run_root, head=False)
    if cfg.head.kind == "none":
        path.unlink(missing_ok=True)
        return None
    by_kw = data.manifest.indices_by_keyword()
    rows = np.concatenate([by_kw[k] for k in data.splits.train if k in by_kw] or [np.zeros(0, int)])
    centre = fit_centre(net, data.features, rows, cfg.head.clips, cfg.train.seed)
    info = {"kind": cfg.head.kind, "clips": int(min(cfg.head.clips, rows.size)),
            "of_train_clips": int(rows.size), "seed": cfg.train.seed}
    write_head(path, centre, info)
    return path
