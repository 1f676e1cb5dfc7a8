"""The ensemble encoder: independent members, summed distances, each member its own loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_close_to_scale
from kws_proto.config import ModelConfig
from kws_proto.encoders import ENCODERS, build_encoder, complete_params
from kws_proto.errors import ConfigError
from kws_proto.model.protonet import PrototypicalNetwork

SMALL = (20, 8)  # frames x n_mfcc
TINY = {"stem_filters": 3, "stem_stride": 1, "filters": [4, 5], "dilations": [1, 2],
        "kernel": 3, "layout": "temporal", "head": "global", "block": "basic"}


def _ensemble(members=3):
    keras.utils.set_random_seed(3)
    return build_encoder("ensemble", SMALL, member="protores", members=members, member_params=TINY)


def _members(enc, n):
    return [enc.get_layer(f"member_{i}") for i in range(n)]


def test_members_are_independent_copies_side_by_side():
    enc = _ensemble(3)
    assert "ensemble" in ENCODERS
    x = np.random.default_rng(0).standard_normal((4, *SMALL)).astype(np.float32)
    out = enc(x, training=False).numpy()
    assert out.shape == (4, 3 * 5) and enc.output_shape == (None, 15)
    blocks = [m(x, training=False).numpy() for m in _members(enc, 3)]
    # one graph against each member on its own: float32 rounding apart (rtol alone fails near 0)
    assert_close_to_scale(out, np.concatenate(blocks, axis=1))
    assert not np.allclose(blocks[0], blocks[1])  # own initialisation each
    one = build_encoder("protores", SMALL, **TINY)
    assert enc.count_params() == 3 * one.count_params()


def test_weights_round_trip(tmp_path):
    enc = _ensemble(2)
    enc.save_weights(tmp_path / "e.weights.h5")
    again = build_encoder("ensemble", SMALL, members=2, member_params=TINY)
    again.load_weights(tmp_path / "e.weights.h5")
    x = np.random.default_rng(1).standard_normal((3, *SMALL)).astype(np.float32)
    np.testing.assert_array_equal(enc(x).numpy(), again(x).numpy())


def test_the_config_names_the_member_blocks_and_the_network_checks_them():
    assert ModelConfig(encoder="ensemble", params={"members": 3, "member_params": TINY}).groups == 3
    assert ModelConfig(encoder="protores", params=TINY).groups == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match=f"groups={bad!r}"):
            PrototypicalNetwork(_ensemble(2), groups=bad)


def test_an_ensemble_network_keeps_its_members_through_save_and_load(tmp_path):
    """Saved as a run directory saves it (the encoder's weights file; the network rebuilt from
    the config) and as a ``.keras`` file, an ensemble network embeds as before, scores each
    member on its own and its loss is still the mean of the members' losses: not the loss of
    the concatenated embedding as one member."""
    from kws_proto.config import ExperimentConfig
    from kws_proto.model.loading import build_network, save_weights

    keras.utils.set_random_seed(5)
    cfg = ExperimentConfig.from_dict(
        {"model": {"encoder": "ensemble", "params": {"members": 2, "member_params": TINY}}})
    net = build_network(cfg)
    save_weights(net.encoder, tmp_path / "best.weights.h5")
    net.encoder.save(tmp_path / "encoder.keras")
    from_run = build_network(cfg)  # another initialisation, then the saved weights
    from_run.encoder.load_weights(tmp_path / "best.weights.h5")
    from_keras = PrototypicalNetwork(keras.models.load_model(tmp_path / "encoder.keras"),
                                     groups=cfg.model.groups)

    rng = np.random.default_rng(6)
    n_way, k_shot, n_query = 3, 2, 2
    support = rng.standard_normal((n_way, k_shot, *cfg.features.shape)).astype(np.float32)
    query = rng.standard_normal((n_way, n_query, *cfg.features.shape)).astype(np.float32)
    x = np.concatenate([support.reshape(-1, *cfg.features.shape),
                        query.reshape(-1, *cfg.features.shape)])
    emb = net.embed(x).numpy()
    d = emb.shape[1] // 2
    members = np.mean([_member_loss_by_hand(emb[:, i * d:(i + 1) * d], n_way, k_shot, n_query)[0]
                       for i in range(2)])
    as_one = _member_loss_by_hand(emb, n_way, k_shot, n_query)[0]
    assert abs(members - as_one) > 1e-4  # near chance both, but apart by far more than rounding
    loss, acc = net(support, query, training=False)
    assert float(loss) == pytest.approx(members, abs=1e-5)
    want, _ = net.member_logits(support, query, training=False)
    for loaded in (from_run, from_keras):
        assert loaded.groups == 2
        np.testing.assert_array_equal(loaded.embed(x).numpy(), emb)
        got, _ = loaded.member_logits(support, query, training=False)
        assert len(got) == 2
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w.numpy())
        again, again_acc = loaded(support, query, training=False)
        assert float(again) == float(loss) and float(again_acc) == float(acc)


def test_params_record_every_member_parameter_and_bad_ones_are_named():
    full = complete_params("ensemble", {"members": 2, "member_params": {"kernel": 5}})
    assert full["member"] == "protores" and full["members"] == 2
    assert full["member_params"] == {**complete_params("protores", {"kernel": 5}),
                                     "filters": [24, 32, 48], "dilations": [1, 2, 4]}
    assert ModelConfig(encoder="ensemble", params={"members": 2}).params["member_params"]["kernel"] == 7
    with pytest.raises(ConfigError, match="'resnet'"):
        complete_params("ensemble", {"member": "resnet"})
    with pytest.raises(ConfigError, match="'ensemble'"):
        complete_params("ensemble", {"member": "ensemble"})
    with pytest.raises(ConfigError, match="kernal.*'protores'"):
        complete_params("ensemble", {"member_params": {"kernal": 5}})
    with pytest.raises(ConfigError, match="members=0"):
        build_encoder("ensemble", SMALL, members=0, member_params=TINY)


def _member_loss_by_hand(emb, n_way, k_shot, n_query):
    """Prototypical loss, logits and labels of one member's embeddings, in numpy (float64)."""
    emb = emb.astype(np.float64)
    protos = emb[: n_way * k_shot].reshape(n_way, k_shot, -1).mean(1)
    q = emb[n_way * k_shot:]
    logits = -((q[:, None, :] - protos[None]) ** 2).sum(-1)
    labels = np.repeat(np.arange(n_way), n_query)
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(labels)), labels].mean(), logits


def test_loss_is_the_mean_of_each_members_own_loss_and_logits_their_sum():
    enc = _ensemble(3)
    net = PrototypicalNetwork(enc, groups=3)
    rng = np.random.default_rng(2)
    n_way, k_shot, n_query = 3, 2, 2
    support = rng.standard_normal((n_way, k_shot, *SMALL)).astype(np.float32)
    query = rng.standard_normal((n_way, n_query, *SMALL)).astype(np.float32)
    x = np.concatenate([support.reshape(-1, *SMALL), query.reshape(-1, *SMALL)])
    by_member = [_member_loss_by_hand(m(x, training=False).numpy(), n_way, k_shot, n_query)
                 for m in _members(enc, 3)]
    loss, acc = net(support, query, training=False)
    assert float(loss) == pytest.approx(np.mean([b[0] for b in by_member]), rel=1e-4)
    summed = sum(b[1] for b in by_member)
    logits, _ = net.logits(support, query, training=False)
    np.testing.assert_allclose(logits.numpy(), summed, rtol=1e-4, atol=1e-4)
    labels = np.repeat(np.arange(n_way), n_query)
    assert float(acc) == pytest.approx((summed.argmax(1) == labels).mean())


def test_a_members_gradient_comes_from_its_own_loss_only():
    enc = _ensemble(2)
    net = PrototypicalNetwork(enc, groups=2)
    rng = np.random.default_rng(4)
    support = rng.standard_normal((2, 2, *SMALL)).astype(np.float32)
    query = rng.standard_normal((2, 2, *SMALL)).astype(np.float32)
    first = _members(enc, 2)[0]
    with tf.GradientTape() as tape:
        loss, _ = net(support, query, training=True)
    together = tape.gradient(loss, first.trainable_variables)
    alone = PrototypicalNetwork(first)
    with tf.GradientTape() as tape:
        own, _ = alone(support, query, training=True)
    expected = tape.gradient(own, first.trainable_variables)
    for g, e in zip(together, expected):
        np.testing.assert_allclose(g.numpy(), e.numpy() / 2, rtol=1e-4, atol=1e-6)


def test_an_ensemble_run_trains_saves_and_reloads_from_its_config(smoke_config, tmp_path):
    import dataclasses

    from kws_proto.eval.evaluate import evaluate_run, grid
    from kws_proto.model.loading import load_run_network
    from conftest import train_run
    from kws_proto.model.runs import RunDir

    model = ModelConfig(encoder="ensemble", params={"members": 2, "member_params": TINY})
    cfg = dataclasses.replace(smoke_config, model=model,
                              train=dataclasses.replace(smoke_config.train, episodes=10, val_every=5))
    result = train_run(cfg, tmp_path / "run")
    assert result["embedding_dim"] == 2 * TINY["filters"][-1]
    assert RunDir(tmp_path / "run").read_config() == cfg  # nested member params survive YAML
    _, net = load_run_network(tmp_path / "run")
    assert net.groups == 2
    rows = evaluate_run(tmp_path / "run", grid([2], [1], n_query=2, episodes=10), progress=False)
    assert 0.0 <= rows[0]["mean"] <= 1.0
