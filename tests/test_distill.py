"""Relational distillation from a frozen teacher (kws_proto.model.distill) and its training run."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from kws_proto.errors import ConfigError
from kws_proto.model.distill import cosine_similarities, relational_distillation
from kws_proto.model.protonet import PrototypicalNetwork
from kws_proto.model.runs import RunDir

from conftest import assert_close_to_scale, needs_gse
from conftest import with_train as _with_train


def _reference(student: np.ndarray, teacher: np.ndarray) -> float:
    """The loss in float64 by its definition: squared differences of the cosine similarities
    over the pairs i != j of rows whose teacher row is not all zeros."""
    def cos(x):
        n = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
        return x @ x.T

    valid = np.flatnonzero(np.any(teacher != 0, axis=1))
    diff = (cos(student) - cos(teacher))[np.ix_(valid, valid)]
    off = ~np.eye(len(valid), dtype=bool)
    return float(np.mean(diff[off] ** 2)) if off.any() else 0.0


def _loss(student, teacher, groups=1) -> float:
    return float(relational_distillation(tf.constant(student, tf.float32),
                                         tf.constant(teacher, tf.float32), groups))


def test_cosine_similarities_of_rows():
    x = tf.constant([[3.0, 0.0], [1.0, 1.0], [0.0, -2.0], [0.0, 0.0]])
    got = cosine_similarities(x).numpy()
    r = 1 / np.sqrt(2)
    want = [[1, r, 0, 0], [r, 1, -r, 0], [0, -r, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_loss_is_zero_when_the_similarities_agree():
    rng = np.random.default_rng(0)
    teacher = rng.standard_normal((12, 96))
    # another dimension, another scale, a rotation: the same cosine similarities
    q, _ = np.linalg.qr(rng.standard_normal((96, 96)))
    student = np.concatenate([3.0 * teacher @ q, np.zeros((12, 16))], axis=1)  # 112-d
    assert _loss(teacher, teacher) < 1e-10
    assert _loss(student, teacher) < 1e-10


def test_loss_matches_its_definition_and_ignores_zero_target_rows():
    rng = np.random.default_rng(1)
    student, teacher = rng.standard_normal((10, 16)), rng.standard_normal((10, 96))
    value = _loss(student, teacher)
    assert value > 0.05  # independent random embeddings disagree
    assert value == pytest.approx(_reference(student, teacher), rel=1e-5)
    masked = teacher.copy()
    masked[[2, 7]] = 0.0  # e.g. silence clips: no target
    moved = student.copy()
    moved[[2, 7]] = rng.standard_normal((2, 16))  # whatever those rows embed to does not matter
    assert _loss(student, masked) == pytest.approx(_reference(student, masked), rel=1e-5)
    assert _loss(moved, masked) == pytest.approx(_loss(student, masked), rel=1e-5)
    assert _loss(student, masked) != pytest.approx(value, rel=1e-3)
    one = np.zeros_like(teacher)
    one[0] = 1.0
    assert _loss(student, one) == 0.0  # fewer than two rows with a target: no pair


def test_loss_is_invariant_to_scaling_the_student():
    rng = np.random.default_rng(2)
    student, teacher = rng.standard_normal((15, 24)), rng.standard_normal((15, 96))
    value = _loss(student, teacher)
    for scale in (1e-3, 0.5, 40.0):
        assert _loss(scale * student, teacher) == pytest.approx(value, rel=1e-4)


def test_gradient_steps_toward_the_teacher_lower_the_loss():
    rng = np.random.default_rng(3)
    teacher = tf.constant(rng.standard_normal((20, 96)), tf.float32)
    student = tf.Variable(rng.standard_normal((20, 8)), dtype=tf.float32)
    opt = keras.optimizers.SGD(learning_rate=20.0)
    losses = []
    for _ in range(8):
        with tf.GradientTape() as tape:
            loss = relational_distillation(student, teacher)
        losses.append(float(loss))
        opt.apply_gradients([(tape.gradient(loss, student), student)])
    assert losses[0] > 0
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.85 * losses[0]


def test_groups_average_each_members_own_term():
    rng = np.random.default_rng(4)
    teacher = rng.standard_normal((9, 96))
    blocks = [rng.standard_normal((9, 8)) for _ in range(3)]
    student = np.concatenate(blocks, axis=1)
    each = [_loss(b, teacher) for b in blocks]
    assert _loss(student, teacher, groups=3) == pytest.approx(np.mean(each), rel=1e-5)
    assert _loss(student, teacher, groups=1) != pytest.approx(np.mean(each), rel=1e-3)
    # a member that matches the teacher exactly (here an 8-d one) adds nothing to its own term
    small = rng.standard_normal((9, 8))
    exact = np.concatenate([blocks[0], 5.0 * small], axis=1)
    assert _loss(exact, small, groups=2) == pytest.approx(_loss(blocks[0], small) / 2, rel=1e-5)


def _identity_net(dim: int, groups: int = 1) -> PrototypicalNetwork:
    encoder = keras.Sequential([keras.Input((dim,)), keras.layers.Identity()])
    if groups > 1:
        encoder.embedding_groups = groups
    return PrototypicalNetwork(encoder)


def test_the_network_distils_the_embeddings_in_the_order_of_its_batch():
    """``net(support, query, teacher=t)`` is the prototypical loss and accuracy of
    ``net(support, query)`` plus the term of the embeddings ordered support, then query."""
    rng = np.random.default_rng(5)
    n_way, k, q, d = 3, 2, 4, 6
    support = rng.standard_normal((n_way, k, d)).astype(np.float32)
    query = rng.standard_normal((n_way, q, d)).astype(np.float32)
    teacher = rng.standard_normal((n_way * (k + q), 96)).astype(np.float32)
    for groups in (1, 2):
        net = _identity_net(d, groups)
        loss, acc = net(support, query, training=True)
        loss_t, acc_t, term = net(support, query, training=True, teacher=teacher)
        assert float(loss_t) == float(loss) and float(acc_t) == float(acc)
        emb = np.concatenate([support.reshape(-1, d), query.reshape(-1, d)])
        assert_close_to_scale(float(term), _loss(emb, teacher, groups))
        shuffled = np.concatenate([support, query], axis=1).reshape(-1, d)  # per-class order
        assert abs(float(term) - _loss(shuffled, teacher, groups)) > 1e-3


def test_distillation_on_several_replicas_is_refused(smoke_config):
    from kws_proto.train.loop import check_distill

    cfg = _with_train(smoke_config, distill=0.5)
    check_distill(cfg, 1)
    check_distill(smoke_config, 4)  # off: any strategy
    with pytest.raises(ConfigError, match=r"train\.distill=0\.5.*one replica.*not 2"):
        check_distill(cfg, 2)


def test_a_run_without_distillation_feeds_pairs(smoke_config):
    from data_prep.builtin import prepare_data

    cfg = dataclasses.replace(smoke_config, augment=dataclasses.replace(smoke_config.augment,
                                                                        enabled=False))
    data = prepare_data(cfg, progress=False)
    ep = cfg.episodes
    sampler = data.sampler("train", ep.n_way, ep.k_shot, ep.n_query, seed=0)
    assert len(data.train_dataset(sampler).element_spec) == 2
    targets = np.ones((len(data.manifest), 4), np.float32)
    spec = data.train_dataset(sampler, targets=targets).element_spec
    assert len(spec) == 3 and spec[2].shape.as_list() == [None, 4]


@needs_gse
def test_a_tiny_run_distils_from_the_speech_embedding_and_logs_the_term(smoke_config, tmp_path):
    from kws_proto.data.dataset import load_manifest
    from kws_proto.model.gse import DIM, crop_table
    from kws_proto.train.loop import train

    cfg = _with_train(smoke_config, episodes=4, val_every=2, distill=1.0)
    cfg = dataclasses.replace(cfg, episodes=dataclasses.replace(cfg.episodes, val_episodes=4))
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["steps"] == 4
    log = [r for r in RunDir(tmp_path / "run").read_log() if "step" in r]
    assert [r["step"] for r in log] == [2, 4]
    for r in log:
        assert np.isfinite(r["train_loss"]) and 0.0 < r["train_distill"] < 4.0
    # the teacher's table is in the dataset's cache, where `eval gse` finds it
    manifest = load_manifest(cfg.data.dataset)
    table = crop_table(manifest, cfg.features, progress=False)
    assert table.shape == (len(manifest), DIM)
    assert len(list((manifest.root / ".cache").glob("gse-*.npy"))) == 1

    plain = _with_train(cfg, distill=0.0)
    train(plain, tmp_path / "plain", progress=False)
    assert all("train_distill" not in r for r in RunDir(tmp_path / "plain").read_log())


@needs_gse
def test_a_centred_teacher_table_keeps_the_differences_between_clips(smoke_config):
    from kws_proto.data.dataset import load_manifest
    from kws_proto.model.distill import teacher_table

    manifest = load_manifest(smoke_config.data.dataset)
    raw = teacher_table("gse", manifest, smoke_config.features, progress=False)
    centred = teacher_table("gse", manifest, smoke_config.features, progress=False, centre=True)
    assert centred.shape == raw.shape and centred.dtype == np.float32
    scale = float(np.abs(raw).max())
    assert np.abs(centred.mean(axis=0)).max() < 1e-5 * scale
    assert_close_to_scale(centred[1:] - centred[0], raw[1:] - raw[0])
    # the raw rows are alike; centred, the similarities spread out
    assert cosine_similarities(tf.constant(centred)).numpy().std() > \
        cosine_similarities(tf.constant(raw)).numpy().std()
