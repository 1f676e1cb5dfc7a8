"""The embedding head: what is done to a trained encoder's embeddings before they are compared.

``head.kind`` (:class:`kws_proto.config.HeadConfig`):

- ``"none"``: the encoder's embeddings as they are;
- ``"cl2n"``: minus the mean embedding of the run's training clips, then each ensemble member's
  block scaled to unit length — "CL2N" of Wang et al. 2019, "SimpleShot: revisiting
  nearest-neighbor classification for few-shot learning" (arXiv 1911.04623).  Inductive: the
  centre comes from training data only, never from the test episode.  On real speech it lifts
  every cross-corpus cell of the shipped encoder (experiments/README.md, "Test-time
  normalisation of the embeddings").

The head is fitted once after training, from the best weights (:func:`fit_head`), and stored
beside them as ``RUN/head.npz``.  Loading a run (:func:`kws_proto.model_io.load_run_network`)
appends it to the encoder as a layer whose non-trainable weight is the centre, so every path
that embeds — evaluation, enrolment, classification, detection, the SavedModel and TFLite
exports — applies the same head, and the encoder fingerprint that banks record covers the
centre: a bank enrolled without the head (or with another centre) is refused, not silently
mixed.  Training and its validation use the bare encoder.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from kws_proto.errors import CheckpointError, ConfigError


def unit_blocks(x, groups: int):
    """``x [shape=(batch, groups * d)]`` with each ``d``-wide block scaled to unit length (TF)."""
    import tensorflow as tf

    parts = tf.split(x, groups, axis=-1) if groups > 1 else [x]
    out = [tf.math.l2_normalize(p, axis=-1, epsilon=1e-12) for p in parts]
    return out[0] if groups == 1 else tf.concat(out, axis=-1)


def centred_unit_layer(dim: int, groups: int, name: str = "head_cl2n"):
    """A Keras layer ``[batch, dim] -> [batch, dim]``: minus its ``centre`` weight, then
    :func:`unit_blocks`.  ``centre [shape=(dim,)]`` is non-trainable, zero until assigned."""
    import keras

    class CentredUnitBlocks(keras.layers.Layer):
        def build(self, input_shape):
            self.centre = self.add_weight(name="centre", shape=(dim,), initializer="zeros",
                                          trainable=False)

        def call(self, x):
            return unit_blocks(x - self.centre, groups)

    return CentredUnitBlocks(name=name)


def with_head(encoder, centre: np.ndarray):
    """``encoder`` followed by the CL2N head with ``centre``, as one Keras model.

    Parameters
    ----------
    encoder : keras.Model
        ``[batch, frames, n_mfcc] -> [batch, d]``; an ensemble's ``embedding_groups`` is kept.
    centre : np.ndarray [shape=(d,)]

    Returns
    -------
    model : keras.Model
        ``[batch, frames, n_mfcc] -> [batch, d]``, each member's block of unit length.
    """
    import keras

    from kws_proto.encoders.ensemble import GROUPS_ATTR

    groups = int(getattr(encoder, GROUPS_ATTR, 1))
    dim = int(encoder.output_shape[-1])
    centre = np.asarray(centre, dtype=np.float32)
    if centre.shape != (dim,):
        raise CheckpointError(f"head centre of shape {centre.shape} does not fit the encoder's "
                              f"{dim}-wide embedding")
    inputs = keras.Input(shape=encoder.input_shape[1:], name="mfcc")
    head = centred_unit_layer(dim, groups)
    model = keras.Model(inputs, head(encoder(inputs)), name=f"{encoder.name}_cl2n")
    head.centre.assign(centre)
    setattr(model, GROUPS_ATTR, groups)
    return model


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
    from kws_proto.evaluate import embed_rows

    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise ConfigError("fitting the head needs training clips; the dataset's train split is empty")
    pick = np.random.default_rng(seed).choice(rows, min(clips, rows.size), replace=False)
    return embed_rows(net, features, pick).astype(np.float64).mean(axis=0).astype(np.float32)


def fit_head(run_root: str | os.PathLike, data=None, progress: bool = False) -> Path | None:
    """Fit the head that the run's ``config.yaml`` asks for and write ``RUN/head.npz``.

    The centre is the mean embedding (best weights, ``training=False``) of ``head.clips``
    clips of the training split, drawn with ``train.seed``.  With ``head.kind: none`` any
    stale ``head.npz`` is removed and nothing is written.

    Parameters
    ----------
    run_root : path
        A run directory with ``best.weights.h5``.
    data : ExperimentData or None
        The run's dataset (its un-augmented ``features`` are read); opened when None.

    Returns
    -------
    path : Path or None
        The written ``head.npz``, or None for ``kind: none``.
    """
    from kws_proto.model_io import load_run_network
    from kws_proto.runs import RunDir

    path = RunDir(Path(run_root)).head_path
    cfg, net = load_run_network(run_root, head=False)
    if cfg.head.kind == "none":
        path.unlink(missing_ok=True)
        return None
    if data is None:
        from kws_proto.evaluate import open_eval_data

        data = open_eval_data(cfg, progress=progress)
    by_kw = data.manifest.indices_by_keyword()
    rows = np.concatenate([by_kw[k] for k in data.splits.train if k in by_kw] or [np.zeros(0, int)])
    centre = fit_centre(net, data.features, rows, cfg.head.clips, cfg.train.seed)
    info = {"kind": cfg.head.kind, "clips": int(min(cfg.head.clips, rows.size)),
            "of_train_clips": int(rows.size), "seed": cfg.train.seed}
    write_head(path, centre, info)
    return path


def write_head(path: str | os.PathLike, centre: np.ndarray, info: dict) -> None:
    """Write ``centre`` and ``info`` (how it was fitted) to ``path`` atomically."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, centre=np.asarray(centre, np.float32), info=np.asarray(json.dumps(info)))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def read_head(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """``(centre [shape=(d,)], info)`` from a ``head.npz``; :class:`CheckpointError` naming the
    file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the run's config asks for a head "
                              "(rerun `kws-proto train CONFIG --run-dir RUN --resume` to fit it)")
    try:
        with np.load(path, allow_pickle=False) as z:
            centre = np.asarray(z["centre"], dtype=np.float32)
            info = json.loads(str(z["info"]))
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: unreadable head ({e})") from e
    if centre.ndim != 1 or not np.all(np.isfinite(centre)):
        raise CheckpointError(f"{path}: the centre must be a finite vector, got shape {centre.shape}")
    return centre, info
