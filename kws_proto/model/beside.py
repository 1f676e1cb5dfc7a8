"""Training beside a frozen embedding: the episode objective of a trained encoder next to a frozen one.

A fused model (:mod:`kws_proto.model.fusion`) compares clips by the weighted sum of its members'
squared distances, each member centred and scaled to unit length.  Fused after training, the
trained member has learnt what it would have learnt alone, much of which the frozen member
knows already.  Trained *beside* it, every episode also scores its queries by that joint
distance, so the gradient rewards what the frozen member misses (``beside`` in the config,
:class:`~kws_proto.config.BesideConfig`).

Two objectives with one signature, ``objective(support, query, tables) -> (loss, accuracy)``,
picked once per run by :func:`kws_proto.model.objective.make_objective`:

- :class:`~kws_proto.model.episode_loss.OwnLoss`: the network's own episode loss, ``tables`` unused;
- :class:`BesideLoss`: one encoder pass, then ``(1 - beside.loss) * own + beside.loss * joint``.
  ``joint`` is the cross-entropy of the logits ``-t * (d_trained + weight * d_frozen)``: ``d``
  squared distances of queries to class prototypes (the mean of the support's unit vectors),
  the trained embeddings centred on the episode's mean embedding and the frozen ones on the
  training corpus's mean (:func:`frozen_table`), each scaled to unit length; ``t`` is learned
  (a log-parametrised scalar starting at ``beside.temperature``), because unit vectors' squared
  distances (at most 4) make flat logits at scale 1.  The accuracy reported is the network's own.

The frozen member's embeddings come from a table over the dataset's clips
(:class:`~kws_proto.data.pipeline.EpisodePipeline` ``tables``), computed once on each clip's
un-augmented crop: the training clip the encoder sees may be shifted and noised, the frozen
member's view of it is not.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from kws_proto.config import BesideConfig
from kws_proto.data.experiment import ExperimentData
from kws_proto.model.fusion import centred_unit
from kws_proto.model.gse import crop_table
from kws_proto.model.episode_loss import WithTerm, prototype_distances, unit
from kws_proto.model.protonet import PrototypicalNetwork, episode_labels, episode_sizes


def frozen_table(member: str, data: ExperimentData, progress: bool = False) -> np.ndarray:
    """The frozen ``member``'s embedding of every clip of ``data``, centred on the mean over the
    training split's clips and scaled to unit length.

    Returns
    -------
    table : np.ndarray [shape=(n_clips, d), dtype=float32]
        Row ``i`` = manifest row ``i``.
    """
    if member != "gse":  # BesideConfig checks the name; a new member needs its table here
        raise ValueError(f"no table for frozen member {member!r}")
    table = np.asarray(crop_table(data.manifest, data.feature_config, progress=progress))
    by_word = data.manifest.indices_by_keyword()
    rows = np.concatenate([by_word[w] for w in data.splits.classes("train") if w in by_word])
    return centred_unit(table, table[rows].mean(axis=0))


class JointScale(keras.layers.Layer):
    """The learned scale ``t = exp(log_t)`` of the joint logits, a layer so checkpoints hold it."""

    def __init__(self, start: float, **kwargs):
        super().__init__(**kwargs)
        self.log_t = self.add_weight(name="log_temperature", shape=(),
                                     initializer=keras.initializers.Constant(math.log(start)))

    def call(self, distances):
        return -tf.exp(self.log_t) * distances


class BesideLoss(WithTerm):
    """``(1 - loss) * own + loss * joint`` of :mod:`this module <kws_proto.model.beside>`; its
    ``term`` is the learned scale."""

    def __init__(self, net: PrototypicalNetwork, config: BesideConfig):
        super().__init__(net, JointScale(config.temperature, name="beside_scale"))
        self.config = config

    def __call__(self, support, query, tables):
        """``support [n_way, k_shot, *input]``, ``query [n_way, n_query, *input]``, ``tables``
        ``{member: (support_rows [n_way, k_shot, d], query_rows [n_way, n_query, d])}``."""
        n_way, k_shot, n_query = episode_sizes(support, query)
        emb = self.net.episode_embeddings(support, query, training=True)
        own, accuracy = self.net.loss_of(emb, n_way, k_shot, n_query)
        frozen_support, frozen_query = tables[self.config.member]
        d = frozen_support.shape[-1]
        frozen = tf.concat([tf.reshape(frozen_support, [-1, d]), tf.reshape(frozen_query, [-1, d])], 0)
        trained = unit(emb - tf.reduce_mean(emb, axis=0, keepdims=True))
        distances = (prototype_distances(trained, n_way, k_shot)
                     + self.config.weight * prototype_distances(frozen, n_way, k_shot))
        joint = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=episode_labels(n_way, n_query), logits=self.term(distances)))
        return (1.0 - self.config.loss) * own + self.config.loss * joint, accuracy
