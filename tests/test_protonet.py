"""Prototypical network: hand-checked metric, learning, one encoder pass, no retracing."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kws_proto.encoders import build_encoder
from kws_proto.errors import ConfigError
from kws_proto.protonet import (
    PrototypicalNetwork,
    cosine_logits,
    prototypes,
    squared_distances,
)


def _identity_encoder(dim: int) -> keras.Model:
    return keras.Sequential([keras.Input((dim,)), keras.layers.Identity()])


def test_prototypes_are_class_means():
    emb = tf.constant([[[0.0, 2.0], [2.0, 4.0], [4.0, 0.0]],
                       [[1.0, 1.0], [1.0, 1.0], [-2.0, 4.0]]])  # 2 way x 3 shot x 2
    np.testing.assert_allclose(prototypes(emb).numpy(), [[2.0, 2.0], [0.0, 2.0]])


def test_squared_distances_sum_over_dimensions():
    a = tf.constant([[0.0, 0.0], [1.0, 1.0]])
    b = tf.constant([[1.0, 0.0], [3.0, 4.0]])
    # by hand: |(0,0)-(1,0)|^2 = 1, |(0,0)-(3,4)|^2 = 25, |(1,1)-(1,0)|^2 = 1, |(1,1)-(3,4)|^2 = 13
    np.testing.assert_allclose(squared_distances(a, b).numpy(), [[1.0, 25.0], [1.0, 13.0]])


def test_squared_distances_stay_accurate_far_from_the_origin():
    rng = np.random.default_rng(0)
    a = 1000.0 + 0.1 * rng.standard_normal((6, 64))
    b = 1000.0 + 0.1 * rng.standard_normal((4, 64))
    exact = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)  # float64, n x m
    got = squared_distances(tf.constant(a, tf.float32), tf.constant(b, tf.float32)).numpy()
    np.testing.assert_allclose(got, exact, rtol=1e-3)
    self_dist = squared_distances(tf.constant(b, tf.float32), tf.constant(b, tf.float32)).numpy()
    assert np.all(self_dist >= 0.0) and np.all(np.diag(self_dist) < 1e-3)


def test_cosine_logits_by_hand():
    a = tf.constant([[1.0, 0.0], [1.0, 1.0]])
    b = tf.constant([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    s = 1.0 / math.sqrt(2.0)
    np.testing.assert_allclose(cosine_logits(a, b, 10.0).numpy(),
                               [[10.0, 0.0, -10.0], [10 * s, 10 * s, -10 * s]], rtol=1e-5)


def test_two_way_one_shot_loss_and_accuracy_by_hand():
    model = PrototypicalNetwork(_identity_encoder(1))
    support = tf.constant([[[0.0]], [[4.0]]])  # 2 way x 1 shot x 1
    query = tf.constant([[[1.0]], [[1.5]]])  # query of class 0 at 1, of class 1 at 1.5
    # class 0 query: distances (1, 9) -> logits (-1, -9); CE = log(1 + e^-8)
    # class 1 query: distances (2.25, 6.25) -> logits (-2.25, -6.25); CE = log(1 + e^4), wrong
    loss, acc = model(support, query, training=False)
    expected = (math.log1p(math.exp(-8.0)) + math.log1p(math.exp(4.0))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(acc) == 0.5
    logits, labels = model.logits(support, query)
    np.testing.assert_allclose(logits.numpy(), [[-1.0, -9.0], [-2.25, -6.25]], rtol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), [0, 1])


def test_logits_and_labels_are_class_major():
    model = PrototypicalNetwork(_identity_encoder(3))
    rng = np.random.default_rng(1)
    support = rng.standard_normal((4, 2, 3)).astype(np.float32)
    query = rng.standard_normal((4, 3, 3)).astype(np.float32)
    logits, labels = model.logits(support, query)
    assert tuple(logits.shape) == (12, 4)
    np.testing.assert_array_equal(labels.numpy(), np.repeat(np.arange(4), 3))
    # independently: row 3*c + i is query[c, i] against the support means
    protos = support.mean(axis=1)
    expected = -((query.reshape(12, 1, 3) - protos[None]) ** 2).sum(-1)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_cosine_model_by_hand_and_learnable_scale():
    model = PrototypicalNetwork(_identity_encoder(2), distance="cosine", cosine_scale=5.0)
    support = tf.constant([[[1.0, 0.0]], [[0.0, 2.0]]])
    query = tf.constant([[[3.0, 0.0]], [[1.0, 1.0]]])
    logits, _ = model.logits(support, query)
    s = 5.0 / math.sqrt(2.0)
    np.testing.assert_allclose(logits.numpy(), [[5.0, 0.0], [s, s]], rtol=1e-5)
    assert [v.name for v in model.trainable_variables] == ["log_scale"]
    with tf.GradientTape() as tape:
        loss, _ = model(support, query, training=True)
    assert float(tape.gradient(loss, model.log_scale)) != 0.0
    fixed = PrototypicalNetwork(_identity_encoder(2), distance="cosine", learn_scale=False)
    assert fixed.trainable_variables == []


@pytest.mark.parametrize("kwargs, named", [
    ({"distance": "manhattan"}, "distance='manhattan'"),
    ({"distance": "cosine", "cosine_scale": 0.0}, "cosine_scale=0.0"),
])
def test_bad_options_raise_config_error(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        PrototypicalNetwork(_identity_encoder(1), **kwargs)


def _clusters(rng, distractor_sd, informative=4, distractors=12):
    """16 classes at the sign codes {-5, 5}^4 (pairwise >= 10 apart, within-class sd 0.1),
    padded with 12 distractor dimensions of sd ``distractor_sd`` that carry no class."""
    codes = 5.0 * np.array(list(itertools.product([-1.0, 1.0], repeat=informative)))
    means = np.concatenate([codes, np.zeros((len(codes), distractors))], axis=1)  # 16 x 16

    def draw(classes, n):  # -> len(classes) x n x 16
        x = means[classes][:, None, :] + 0.1 * rng.standard_normal((len(classes), n, 16))
        x[..., informative:] += distractor_sd * rng.standard_normal((len(classes), n, distractors))
        return tf.constant(x, tf.float32)

    return draw


def _train_on_clusters(distance, distractor_sd, steps=40):
    """Train a Dense(8) encoder on 10 classes; accuracy on the 6 unseen ones before and after.

    Returns (accuracy before, accuracy after, training losses), accuracies over five 4-way
    3-shot 10-query episodes of unseen classes.
    """
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    draw = _clusters(rng, distractor_sd)
    classes = rng.permutation(16)
    seen, unseen = classes[:10], classes[10:]
    model = PrototypicalNetwork(keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)]),
                                distance=distance)
    optimizer = keras.optimizers.Adam(0.05)

    def unseen_accuracy():
        accs = []
        for _ in range(5):
            way = rng.choice(unseen, 4, replace=False)
            accs.append(float(model(draw(way, 3), draw(way, 10), training=False)[1]))
        return float(np.mean(accs))

    before = unseen_accuracy()
    losses = []
    for _ in range(steps):
        way = rng.choice(seen, 4, replace=False)
        with tf.GradientTape() as tape:
            loss, _ = model(draw(way, 3), draw(way, 5), training=True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    return before, unseen_accuracy(), losses


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_separated_clusters_reach_accuracy_one(distance):
    _, after, losses = _train_on_clusters(distance, distractor_sd=0.5, steps=20)
    assert np.all(np.isfinite(losses))
    assert after == 1.0


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_training_learns_to_ignore_distractors(distance):
    before, after, losses = _train_on_clusters(distance, distractor_sd=3.0, steps=40)
    assert before < 0.9  # an untrained projection mixes the distractors in
    assert np.mean(losses[-5:]) < 0.1 * np.mean(losses[:5])
    assert after >= 0.98  # on classes never seen in training


class _CountingEncoder(keras.Model):
    """A real (flattening) encoder that records the batch size of every call."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def call(self, x, training=None):
        self.batches.append(int(x.shape[0]))
        return tf.reshape(x, [tf.shape(x)[0], -1])


def test_support_and_query_share_one_encoder_pass():
    encoder = _CountingEncoder()
    model = PrototypicalNetwork(encoder)
    rng = np.random.default_rng(2)
    model(rng.standard_normal((3, 2, 4, 2)).astype(np.float32),
          rng.standard_normal((3, 5, 4, 2)).astype(np.float32), training=True)
    assert encoder.batches == [3 * (2 + 5)]


def test_any_way_shot_query_runs_in_one_trace():
    keras.utils.set_random_seed(3)
    shape = (12, 6)
    encoder = build_encoder("protores", shape, stem_filters=2, filters=(3, 4), dilations=(1, 2),
                            kernel=3)
    model = PrototypicalNetwork(encoder)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)  # no variable creation inside the trace
    traces = []
    spec = tf.TensorSpec([None, None, *shape], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def train_step(support, query):
        traces.append(1)  # Python side effect: runs once per trace
        with tf.GradientTape() as tape:
            loss, acc = model(support, query, training=True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, acc

    rng = np.random.default_rng(4)
    for way, shot, query in [(2, 1, 1), (5, 5, 15), (3, 2, 4)]:
        s = rng.standard_normal((way, shot, *shape)).astype(np.float32)
        q = rng.standard_normal((way, query, *shape)).astype(np.float32)
        loss, acc = train_step(s, q)
        assert np.isfinite(float(loss))
        assert float(acc) * way * query == pytest.approx(round(float(acc) * way * query))
    assert len(traces) == 1


def test_batchnorm_episode_statistics_versus_enrolment():
    """training=True normalizes by the batch; training=False (enrolment) does not."""
    keras.utils.set_random_seed(5)
    shape = (12, 6)
    encoder = build_encoder("protores", shape, stem_filters=2, filters=(3,), dilations=(1,),
                            kernel=3)
    model = PrototypicalNetwork(encoder)
    x = np.random.default_rng(6).standard_normal((5, *shape)).astype(np.float32)
    alone = model.embed(x[:1]).numpy()
    np.testing.assert_allclose(model.embed(x).numpy()[:1], alone, rtol=1e-5, atol=1e-5)
    with_batch = model.embed(x, training=True).numpy()[:1]
    with_other_batch = model.embed(np.concatenate([x[:1], 3 * x[1:]]), training=True).numpy()[:1]
    assert not np.allclose(with_batch, with_other_batch, atol=1e-3)
    assert model.embed(x).shape == (5, encoder.output_shape[-1])
