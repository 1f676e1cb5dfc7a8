"""What every episode objective shares: unit vectors, distances to prototypes, the network's own
loss, and an extra term's learned layer (:mod:`kws_proto.model.objective` picks the objective).
"""

from __future__ import annotations

import tensorflow as tf

from kws_proto.model.protonet import PrototypicalNetwork, prototypes

EPS = 1e-12  # norm floor, as kws_proto.model.fusion


def unit(x: tf.Tensor) -> tf.Tensor:
    """Rows of ``x [n, d]`` scaled to unit length."""
    return tf.math.l2_normalize(x, axis=-1, epsilon=EPS)


def prototype_distances(emb: tf.Tensor, n_way, k_shot) -> tf.Tensor:
    """Squared distances of an episode's queries to its class prototypes.

    Parameters
    ----------
    emb : tf.Tensor [shape=(n_way * k_shot + n_query_total, d)]
        Support rows class-major, then query rows.

    Returns
    -------
    distances : tf.Tensor [shape=(n_query_total, n_way)]
    """
    n_support = n_way * k_shot
    protos = prototypes(tf.reshape(emb[:n_support], [n_way, k_shot, -1]))  # n_way x d
    query = emb[n_support:]
    return (tf.reduce_sum(tf.square(query), 1, keepdims=True)
            + tf.reduce_sum(tf.square(protos), 1)[tf.newaxis] - 2.0 * tf.matmul(query, protos, transpose_b=True))


class OwnLoss:
    """The network's own episode loss: ``net(support, query, training=True)``."""

    def __init__(self, net: PrototypicalNetwork):
        self.net = net

    @property
    def trainable_variables(self) -> list:
        return self.net.trainable_variables

    @property
    def checkpointed(self) -> dict:
        """What the run's checkpoint holds of the objective beside the network: nothing."""
        return {}

    def __call__(self, support, query, tables=None):
        return self.net(support, query, training=True)


class WithTerm(OwnLoss):
    """An objective of the network's own loss and one extra term whose learned parameters live in
    the layer ``term`` (stepped with the network's, and held by the run's checkpoint as
    ``objective``)."""

    def __init__(self, net: PrototypicalNetwork, term):
        super().__init__(net)
        self.term = term

    @property
    def trainable_variables(self) -> list:
        return self.net.trainable_variables + self.term.trainable_variables

    @property
    def checkpointed(self) -> dict:
        return {"objective": self.term}
