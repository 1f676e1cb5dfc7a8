"""Relational distillation: a frozen teacher's similarities between clips as a training signal.

Relational knowledge distillation (Park, Kim, Lu & Cho 2019, "Relational knowledge
distillation", arXiv 1904.05068) transfers the structure of a teacher's embedding rather than its
coordinates.  Here the structure is the cosine similarity of every pair of an episode's clips:
the student's similarity matrix of its L2-normalised embeddings is pulled towards the teacher's
(:func:`relational_distillation`).  Student and teacher need not share a dimension (the Google
speech embedding, :mod:`kws_proto.model.gse`, is 96-d), and the term ignores the scale of either.
On unit vectors the squared distance is ``2 - 2 cos``, so this is Park et al.'s distance-wise
variant on the unit sphere, with a squared error in place of their Huber loss.

The teacher of a training run is a table of one row per manifest row (:func:`teacher_table`);
the training feed gathers an episode's rows in the order the network embeds its clips
(:class:`~kws_proto.data.pipeline.EpisodePipeline`, ``targets``).  A row of zeros has no target:
every pair that includes it is left out (the feed zeros the rows of silence clips, which have
no teacher embedding).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kws_proto.errors import ConfigError


def cosine_similarities(x: tf.Tensor) -> tf.Tensor:
    """Cosine similarity of every pair of rows (a row of zeros: 0 with every row).

    Parameters
    ----------
    x : tf.Tensor [shape=(n, d)]

    Returns
    -------
    similarities : tf.Tensor [shape=(n, n)]
    """
    x = tf.math.l2_normalize(x, axis=-1)
    return tf.matmul(x, x, transpose_b=True)


def relational_distillation(student: tf.Tensor, teacher: tf.Tensor, groups: int = 1) -> tf.Tensor:
    """Mean squared difference of the student's and the teacher's cosine similarities.

    Over the off-diagonal pairs ``(i, j)``, ``i != j``, of rows that both have a target (a
    teacher row that is not all zeros).  With ``groups`` > 1 the student's embedding is split
    into that many equal blocks (the members of an ensemble encoder,
    :mod:`kws_proto.encoders.ensemble`), each matched to the teacher on its own, and the terms
    are averaged, as the prototypical loss is per member.

    Parameters
    ----------
    student : tf.Tensor [shape=(n, groups * d)]
        The student's embeddings (any float dtype; computed in float32).
    teacher : tf.Tensor [shape=(n, d_teacher)]
        The teacher's embeddings of the same clips, row for row; a row of zeros has no target.
    groups : int
        Member blocks of ``student``.

    Returns
    -------
    loss : tf.Tensor [shape=(), dtype=float32]
        0 when fewer than two rows have a target.
    """
    student = tf.cast(student, tf.float32)
    teacher = tf.cast(teacher, tf.float32)
    valid = tf.reduce_any(tf.not_equal(teacher, 0.0), axis=-1)  # n
    index = tf.range(tf.shape(teacher)[0])
    pairs = valid[:, tf.newaxis] & valid[tf.newaxis, :] & (index[:, tf.newaxis] != index)  # n x n
    weights = tf.cast(pairs, tf.float32)
    count = tf.maximum(tf.reduce_sum(weights), 1.0)
    target = cosine_similarities(teacher)  # n x n
    blocks = tf.split(student, groups, axis=-1) if groups > 1 else [student]
    terms = [tf.reduce_sum(weights * tf.square(cosine_similarities(b) - target)) / count
             for b in blocks]
    return tf.add_n(terms) / len(terms)


def teacher_table(teacher: str, manifest, feature_config, progress: bool = True,
                  centre: bool = False) -> np.ndarray:
    """The embedding of every clip of a dataset by a frozen teacher, built once and cached.

    Parameters
    ----------
    teacher : {"gse"}
        ``"gse"``: the Google speech embedding of every clip's un-augmented crop
        (:func:`kws_proto.model.gse.crop_table`, cached in the dataset's cache; needs the
        optional extra ``gse``).
    manifest : Manifest
    feature_config : FeatureConfig
        The run's front end: its sample rate, clip length and crop choose the clips' audio.
    progress : bool
    centre : bool
        Subtract the table's mean row (over every clip of the manifest).

    Returns
    -------
    table : np.ndarray [shape=(len(manifest), d_teacher), dtype=float32]
        Row ``i`` = manifest row ``i`` (96 columns for ``"gse"``).

    Raises
    ------
    ConfigError
        An unknown teacher.
    GSEUnavailableError
        ``"gse"`` without the ``gse`` extra.
    """
    from kws_proto.config import TEACHERS

    if teacher not in TEACHERS:
        raise ConfigError(f"teacher={teacher!r} must be one of {', '.join(map(repr, TEACHERS))}")
    from kws_proto.model.gse import crop_table

    table = crop_table(manifest, feature_config, progress=progress)
    if not centre:
        return table
    return np.asarray(table - table.mean(axis=0, dtype=np.float64), dtype=np.float32)
