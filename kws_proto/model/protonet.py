"""The prototypical network: an encoder plus the prototype metric (Snell et al. 2017).

The model owns only the metric. :func:`prototypes` and :func:`squared_distances` are pure
functions that scoring, enrolment and matching reuse.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kws_proto.errors import ConfigError


def prototypes(support_embeddings: tf.Tensor) -> tf.Tensor:
    """Class prototypes: the mean support embedding of each class.

    Parameters
    ----------
    support_embeddings : tf.Tensor [shape=(n_way, k_shot, d)]

    Returns
    -------
    prototypes : tf.Tensor [shape=(n_way, d)]
    """
    return tf.reduce_mean(support_embeddings, axis=1)


def squared_distances(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Squared Euclidean distances ``||a_i - b_j||^2``, summed (not averaged) over ``d``.

    Computed as ``|a|^2 + |b|^2 - 2 a.b`` (no ``[n, m, d]`` intermediate) after subtracting the
    mean of ``b`` from both sets: distances are unchanged by a common shift, and centring stops
    the cancellation the expansion suffers when embeddings are far from the origin. Rounding can
    still leave tiny negatives, which are clipped at 0.

    Parameters
    ----------
    a : tf.Tensor [shape=(n, d)]
    b : tf.Tensor [shape=(m, d)]

    Returns
    -------
    distances : tf.Tensor [shape=(n, m)]
    """
    centre = tf.reduce_mean(b, axis=0, keepdims=True)  # 1 x d
    a = a - centre
    b = b - centre
    a2 = tf.reduce_sum(tf.square(a), axis=1, keepdims=True)  # n x 1
    b2 = tf.reduce_sum(tf.square(b), axis=1)[tf.newaxis, :]  # 1 x m
    ab = tf.matmul(a, b, transpose_b=True)  # n x m
    return tf.maximum(a2 + b2 - 2.0 * ab, 0.0)


def episode_sizes(support: tf.Tensor, query: tf.Tensor):
    """``(n_way, k_shot, n_query)`` of an episode's ``support [n_way, k_shot, ...]`` and
    ``query [n_way, n_query, ...]`` (scalar tensors)."""
    support_shape, query_shape = tf.shape(support), tf.shape(query)
    return support_shape[0], support_shape[1], query_shape[1]


def episode_labels(n_way: tf.Tensor, n_query: tf.Tensor) -> tf.Tensor:
    """Labels of queries stored class-major: ``[0]*n_query + [1]*n_query + ...``.

    Returns
    -------
    labels : tf.Tensor [shape=(n_way * n_query,), dtype=int32]
    """
    return tf.repeat(tf.range(n_way, dtype=tf.int32), n_query)


class PrototypicalNetwork(keras.Model):
    """Prototypical network: scores queries by their distance to the mean support embedding.

    Snell, Swersky & Zemel 2017, "Prototypical networks for few-shot learning"
    (arXiv 1703.05175). Not compiled or fitted: a training step runs ``loss, acc =
    model(support, query, training=True)`` under a ``tf.GradientTape``.

    Support and query are embedded in ONE encoder pass over their concatenation, and every size
    (way, shot, query) is read with ``tf.shape``, so one ``tf.function`` trace whose signature
    leaves those dimensions ``None`` serves every episode.

    BatchNorm in episodes: with ``training=True`` (training episodes) every BatchNormalization
    normalizes with the statistics of this episode's batch (support and query together, the
    same for both because they share one pass) and updates its moving averages. With
    ``training=False`` (validation, test, enrolment and detection) BN uses those moving
    averages, so an embedding does not depend on the other clips it is batched with and
    enrolling one clip or five is well defined. Pass ``training`` explicitly; ``None`` means
    ``False`` outside ``fit``.

    Parameters
    ----------
    encoder : keras.Model
        Maps ``x [shape=(batch, *input)]`` to ``[shape=(batch, d)]``.
    groups : int
        How many equal member blocks the embedding has: an ensemble encoder's members
        (:mod:`kws_proto.encoders.ensemble`; ``ModelConfig.groups``), else 1.  Each block gets its
        own prototypes and loss (:meth:`member_logits`).

    The logits are minus the squared Euclidean distances (summed over ``d``, not averaged) of
    the queries to the class prototypes.
    """

    def __init__(self, encoder: keras.Model, groups: int = 1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ConfigError(f"groups={groups!r} must be a positive integer")
        self.encoder = encoder
        self.groups = groups

    def embed(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Embeddings of a batch of clips, ``training=False`` by default (enrolment).

        Parameters
        ----------
        x : tf.Tensor [shape=(batch, *input)]

        Returns
        -------
        embeddings : tf.Tensor [shape=(batch, d)]
        """
        return self.encoder(x, training=training)

    def scores(self, query_embeddings: tf.Tensor, protos: tf.Tensor) -> tf.Tensor:
        """Logits of queries against prototypes: minus their squared distances.

        Parameters
        ----------
        query_embeddings : tf.Tensor [shape=(n, d)]
        protos : tf.Tensor [shape=(m, d)]

        Returns
        -------
        logits : tf.Tensor [shape=(n, m)]
            ``-squared_distances``; larger is closer.
        """
        return -squared_distances(query_embeddings, protos)

    def episode_embeddings(self, support: tf.Tensor, query: tf.Tensor, training=None) -> tf.Tensor:
        """Embeddings of an episode's clips, support and query in one encoder pass.

        Parameters
        ----------
        support : tf.Tensor [shape=(n_way, k_shot, *input)]
        query : tf.Tensor [shape=(n_way, n_query, *input)]
        training : bool
            Passed to the encoder (BatchNorm batch statistics when True).

        Returns
        -------
        embeddings : tf.Tensor [shape=(n_way * k_shot + n_way * n_query, d), dtype=float32]
            All support clips class-major (class 0's ``k_shot``, then class 1's, ...), then all
            query clips class-major.
        """
        support = tf.convert_to_tensor(support)
        query = tf.convert_to_tensor(query)
        flat = tf.concat([[-1], tf.shape(support)[2:]], axis=0)
        x = tf.concat([tf.reshape(support, flat), tf.reshape(query, flat)], axis=0)
        # x: (n_way * k_shot + n_way * n_query) x *input
        emb = self.encoder(x, training=training)  # (n_way * (k_shot + n_query)) x d
        if emb.dtype != tf.float32:  # a mixed-precision encoder: distances and softmax in float32
            emb = tf.cast(emb, tf.float32)
        return emb

    def member_logits(self, support: tf.Tensor, query: tf.Tensor, training=None):
        """Logits of every query against every class prototype, per ensemble member.

        A plain encoder is one member. An ensemble encoder of ``G`` members (the network's
        ``groups``, :mod:`kws_proto.encoders.ensemble`) embeds into ``G`` equal blocks; each
        block gets its own prototypes and logits.

        Parameters
        ----------
        support : tf.Tensor [shape=(n_way, k_shot, *input)]
        query : tf.Tensor [shape=(n_way, n_query, *input)]
            Query ``query[c, i]`` belongs to class ``c``.
        training : bool
            Passed to the encoder (BatchNorm batch statistics when True).

        Returns
        -------
        logits : list of G tf.Tensor [shape=(n_way * n_query, n_way)]
        labels : tf.Tensor [shape=(n_way * n_query,), dtype=int32]
        """
        emb = self.episode_embeddings(support, query, training=training)
        return self.logits_of(emb, *episode_sizes(support, query))

    def logits_of(self, emb: tf.Tensor, n_way, k_shot, n_query):
        """:meth:`member_logits` of an episode's embeddings (:meth:`episode_embeddings`)."""
        n_support = n_way * k_shot
        out = []
        for part in tf.split(emb, self.groups, axis=-1) if self.groups > 1 else [emb]:
            d = tf.shape(part)[-1]
            protos = prototypes(tf.reshape(part[:n_support], [n_way, k_shot, d]))  # n_way x d
            out.append(self.scores(part[n_support:], protos))  # (n_way * n_query) x n_way
        return out, episode_labels(n_way, n_query)

    def logits(self, support: tf.Tensor, query: tf.Tensor, training=None):
        """Logits of every query against every class prototype, and the queries' labels.

        For an ensemble, the members' logits summed: with the squared Euclidean distance that is
        exactly the logit of the concatenated embedding, so evaluation on embeddings agrees.

        Parameters
        ----------
        support : tf.Tensor [shape=(n_way, k_shot, *input)]
        query : tf.Tensor [shape=(n_way, n_query, *input)]

        Returns
        -------
        logits : tf.Tensor [shape=(n_way * n_query, n_way)]
        labels : tf.Tensor [shape=(n_way * n_query,), dtype=int32]
        """
        parts, labels = self.member_logits(support, query, training=training)
        return tf.add_n(parts), labels

    def call(self, support: tf.Tensor, query: tf.Tensor, training=None):
        """Episode loss and accuracy.

        Parameters
        ----------
        support : tf.Tensor [shape=(n_way, k_shot, *input)]
        query : tf.Tensor [shape=(n_way, n_query, *input)]
        training : bool

        Returns
        -------
        loss : tf.Tensor [shape=()]
            Mean softmax cross-entropy of the queries over the ``n_way`` classes (for an
            ensemble, the mean over members of each member's own loss).
        accuracy : tf.Tensor [shape=()]
            Fraction of queries whose nearest prototype is their own class.
        """
        emb = self.episode_embeddings(support, query, training=training)
        return self.loss_of(emb, *episode_sizes(support, query))

    def loss_of(self, emb: tf.Tensor, n_way, k_shot, n_query):
        """:meth:`call`'s ``(loss, accuracy)`` from an episode's embeddings
        (:meth:`episode_embeddings`), so another loss term can share the encoder pass."""
        parts, labels = self.logits_of(emb, n_way, k_shot, n_query)
        loss = tf.add_n([  # each member learns from its own prototypes: independent members
            tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=p))
            for p in parts
        ]) / len(parts)
        logits = tf.add_n(parts)
        predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(predicted, labels), tf.float32))
        return loss, accuracy
