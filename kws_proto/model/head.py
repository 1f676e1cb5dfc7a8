"""The embedding head: what is done to a trained encoder's embeddings before they are compared.

``head.kind`` (:class:`kws_proto.config.HeadConfig`):

- ``"none"``: the encoder's embeddings as they are;
- ``"cl2n"``: minus the mean embedding of the run's training clips, then each ensemble member's
  block scaled to unit length — "CL2N" of Wang et al. 2019, "SimpleShot: revisiting
  nearest-neighbor classification for few-shot learning" (arXiv 1911.04623).  Inductive: the
  centre comes from training data only, never from the test episode (why:
  experiments/test-time-normalisation.md).

The head is fitted once after training, from the best weights
(:func:`kws_proto.train.head_fit.fit_head`), and stored
beside them as ``RUN/head.npz``.  Loading a run (:func:`kws_proto.model.loading.load_run_network`)
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

from kws_proto.errors import CheckpointError
from kws_proto.util.atomic import atomic_write_bytes


def unit_blocks(x, groups: int):
    """``x [shape=(batch, groups * d)]`` with each ``d``-wide block scaled to unit length (TF)."""
    import tensorflow as tf  # lazy: TensorFlow

    parts = tf.split(x, groups, axis=-1) if groups > 1 else [x]
    out = [tf.math.l2_normalize(p, axis=-1, epsilon=1e-12) for p in parts]
    return out[0] if groups == 1 else tf.concat(out, axis=-1)


def centred_unit_layer(dim: int, groups: int, name: str = "head_cl2n"):
    """A Keras layer ``[batch, dim] -> [batch, dim]``: minus its ``centre`` weight, then
    :func:`unit_blocks`.  ``centre [shape=(dim,)]`` is non-trainable, zero until assigned."""
    import keras  # lazy: TensorFlow

    class CentredUnitBlocks(keras.layers.Layer):
        def build(self, input_shape):
            self.centre = self.add_weight(name="centre", shape=(dim,), initializer="zeros",
                                          trainable=False)

        def call(self, x):
            return unit_blocks(x - self.centre, groups)

    return CentredUnitBlocks(name=name)


def with_head(encoder, centre: np.ndarray, groups: int):
    """``encoder`` followed by the CL2N head with ``centre``, as one Keras model.

    Parameters
    ----------
    encoder : keras.Model
        ``[batch, frames, n_mfcc] -> [batch, d]``.
    centre : np.ndarray [shape=(d,)]
    groups : int
        Equal member blocks of the embedding (an ensemble's members, ``ModelConfig.groups``):
        each is scaled to unit length on its own.

    Returns
    -------
    model : keras.Model
        ``[batch, frames, n_mfcc] -> [batch, d]``, each member's block of unit length.
    """
    import keras  # lazy: TensorFlow

    dim = int(encoder.output_shape[-1])
    centre = np.asarray(centre, dtype=np.float32)
    if centre.shape != (dim,):
        raise CheckpointError(f"head centre of shape {centre.shape} does not fit the encoder's "
                              f"{dim}-wide embedding")
    inputs = keras.Input(shape=encoder.input_shape[1:], name="mfcc")
    head = centred_unit_layer(dim, groups)
    model = keras.Model(inputs, head(encoder(inputs)), name=f"{encoder.name}_cl2n")
    head.centre.assign(centre)
    return model


def write_head(path: str | os.PathLike, centre: np.ndarray, info: dict) -> None:
    """Write ``centre`` and ``info`` (how it was fitted) to ``path`` atomically."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, centre=np.asarray(centre, np.float32), info=np.asarray(json.dumps(info)))
    atomic_write_bytes(path, buf.getvalue())


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
