"""Rejection learnt in training: open-set episodes with a learned "none of them" distance.

A spotter must leave alone the words it never enrolled, but a prototypical loss only ever asks
which of the episode's classes a query is closest to.  With ``openset.loss`` > 0
(:class:`~kws_proto.config.OpenSetConfig`) every training episode carries, after its ``n_way``
classes, a row of words of none of them (``episodes.unknown``: the dataset's ``unknown`` pool,
:class:`~kws_proto.data.episodes.EpisodeSampler`), and each query is scored against the ``n_way``
prototypes plus one more column, "none": the logits are ``-[d(q, p_1), ..., d(q, p_n), delta]``
with ``d`` the squared distances of the network's own metric and ``delta = exp(a) * mean d`` a
learned multiple ``exp(a)`` (``a`` starts at 0) of the episode's mean query-prototype distance
(held constant for the gradient, so the network cannot move the bar by moving every distance).
The unknown row's queries are labelled "none", the others their class: the embedding learns to put
a word of no class beyond the bar and a class's own words inside it — the "dummy prototype" of
open-set few-shot keyword spotting (Rusci & Tuytelaars 2023; D-ProtoNets 2022), here a distance
rather than a point.  The loss is ``(1 - openset.loss) * own + openset.loss * rejection``, ``own``
the network's episode loss (which treats the unknown row as one more class, as the reference
protocol does); the accuracy reported is the network's own.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kws_proto.config import OpenSetConfig
from kws_proto.model.episode_loss import WithTerm, prototype_distances
from kws_proto.model.protonet import PrototypicalNetwork, episode_labels, episode_sizes


class NoneDistance(keras.layers.Layer):
    """The "none" column's distance: ``exp(a) * mean(d)``, ``a`` learned (a layer, so checkpoints
    hold it)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.log_ratio = self.add_weight(name="log_none_ratio", shape=(), initializer="zeros")

    def call(self, distances):
        """``distances [n_queries, n_classes]`` -> ``[n_queries, 1]``."""
        bar = tf.exp(self.log_ratio) * tf.stop_gradient(tf.reduce_mean(distances))
        return tf.fill([tf.shape(distances)[0], 1], bar)


class RejectionLoss(WithTerm):
    """``(1 - loss) * own + loss * rejection`` of :mod:`this module <kws_proto.model.rejection>`;
    its ``term`` is the "none" distance."""

    def __init__(self, net: PrototypicalNetwork, config: OpenSetConfig):
        super().__init__(net, NoneDistance(name="openset_none"))
        self.config = config

    def __call__(self, support, query, tables=None):
        """``support [n_way + 1, k_shot, *input]``, ``query [n_way + 1, n_query, *input]``, the
        last row the episode's unknown words."""
        rows, k_shot, n_query = episode_sizes(support, query)
        emb = self.net.episode_embeddings(support, query, training=True)
        own, accuracy = self.net.loss_of(emb, rows, k_shot, n_query)
        distances = prototype_distances(emb, rows, k_shot)[:, : rows - 1]  # known classes only
        logits = -tf.concat([distances, self.term(distances)], axis=1)  # last column: none
        rejection = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=episode_labels(rows, n_query), logits=logits))  # unknown row -> column n_way
        return (1.0 - self.config.loss) * own + self.config.loss * rejection, accuracy
