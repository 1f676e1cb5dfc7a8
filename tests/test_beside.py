"""Training beside a frozen embedding: config, the per-clip tables in the feed, the joint loss
recomputed independently, and a real training run that resumes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from kws_proto.audio.features import FeatureConfig
from kws_proto.config import BesideConfig, ExperimentConfig, ModelConfig, dump_config, load_config
from kws_proto.data.cache import feature_cache
from kws_proto.data.dataset import Clip, load_manifest, write_manifest
from kws_proto.data.episodes import EpisodeSampler
from kws_proto.data.pipeline import EpisodePipeline
from kws_proto.errors import ConfigError
from kws_proto.model.beside import BesideLoss
from kws_proto.model.episode_loss import OwnLoss
from kws_proto.model.objective import make_objective
from kws_proto.model.loading import build_network
from kws_proto.model.runs import RunDir

from conftest import needs_gse, train_run, with_train

SR = 16000
FC = FeatureConfig()


@pytest.mark.parametrize("bad, key", [({"member": "wav2vec"}, "beside.member"),
                                      ({"loss": 1.5}, "beside.loss"),
                                      ({"weight": -1.0}, "beside.weight"),
                                      ({"temperature": 0.0}, "beside.temperature")])
def test_bad_beside_values_are_refused_naming_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        ExperimentConfig.from_dict({"beside": {"member": "gse", **bad}})


def test_a_config_without_the_section_trains_alone():
    cfg = ExperimentConfig.from_dict({"name": "x"})
    assert cfg.beside == BesideConfig() and not cfg.beside.member
    assert isinstance(make_objective(cfg, build_network(_tiny(cfg))), OwnLoss)


def _tiny(cfg: ExperimentConfig) -> ExperimentConfig:
    return dataclasses.replace(cfg, model=ModelConfig("conv4", {"filters": 4}))


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """4 tone "words" x 2 speakers x 3 takes, and their feature cache."""
    root = tmp_path_factory.mktemp("tones")
    clips = []
    for w in range(4):
        (root / f"w{w}").mkdir()
        for s in range(2):
            for k in range(3):
                t = np.arange(SR) / SR
                y = 0.3 * np.sin(2 * np.pi * 250 * (w + 1) * (1 + 0.03 * s + 0.01 * k) * t)
                sf.write(root / f"w{w}/s{s}_{k}.wav", y.astype(np.float32), SR)
                clips.append(Clip(f"w{w}/s{s}_{k}.wav", f"w{w}", f"s{s}", 1.0, SR))
    write_manifest(root, clips)
    m = load_manifest(root)
    return m, feature_cache(m, FC, progress=False)


def test_tables_ride_along_with_their_clips(tones):
    manifest, features = tones
    table = np.arange(len(manifest) * 3, dtype=np.float32).reshape(-1, 3)  # row i: 3i, 3i+1, 3i+2
    sampler = EpisodeSampler(manifest, [f"w{w}" for w in range(4)], 3, 2, 1, seed=4)
    pipe = EpisodePipeline(FC, features=features, tables={"t": table})
    (support, query, tables), = list(pipe.dataset(sampler).take(1))
    episode = sampler.sample(0)
    np.testing.assert_array_equal(tables["t"][0].numpy(), table[episode.support])
    np.testing.assert_array_equal(tables["t"][1].numpy(), table[episode.query])
    np.testing.assert_array_equal(support.numpy(), features[episode.support])
    with pytest.raises(ConfigError, match="table 'bad'"):
        EpisodePipeline(FC, features=features, tables={"bad": table[:-1]})


def _reference_joint(emb, frozen, n_way, k_shot, weight, scale):
    """The joint cross-entropy written out in numpy, independently of the module."""
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def distances(e):
        protos = e[: n_way * k_shot].reshape(n_way, k_shot, -1).mean(1)
        q = e[n_way * k_shot:]
        return ((q[:, None, :] - protos[None]) ** 2).sum(-1)

    trained = unit(emb - emb.mean(0))
    logits = -scale * (distances(trained) + weight * distances(frozen))
    logits -= logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    labels = np.repeat(np.arange(n_way), len(logits) // n_way)
    return -logp[np.arange(len(labels)), labels].mean()


def test_the_joint_loss_is_the_fused_models_cross_entropy():
    cfg = _tiny(ExperimentConfig.from_dict({"beside": {"member": "gse", "loss": 0.25,
                                                        "weight": 2.0, "temperature": 7.0}}))
    net = build_network(cfg)
    objective = make_objective(cfg, net)
    assert isinstance(objective, BesideLoss)
    rng = np.random.default_rng(0)
    n_way, k_shot, n_query = 3, 2, 2
    support = rng.normal(size=(n_way, k_shot, *FC.shape)).astype(np.float32)
    query = rng.normal(size=(n_way, n_query, *FC.shape)).astype(np.float32)
    frozen = rng.normal(size=(n_way * (k_shot + n_query), 5)).astype(np.float32)
    frozen /= np.linalg.norm(frozen, axis=1, keepdims=True)
    tables = {"gse": (frozen[: n_way * k_shot].reshape(n_way, k_shot, 5),
                      frozen[n_way * k_shot:].reshape(n_way, n_query, 5))}
    loss, acc = objective(support, query, tables)
    emb = net.episode_embeddings(support, query, training=True).numpy()
    own, own_acc = net(support, query, training=True)
    joint = _reference_joint(emb, frozen, n_way, k_shot, 2.0, 7.0)
    np.testing.assert_allclose(float(loss), 0.75 * float(own) + 0.25 * joint, rtol=1e-4)
    assert float(acc) == float(own_acc)


def test_the_frozen_members_rows_steer_the_encoders_gradient():
    cfg = _tiny(ExperimentConfig.from_dict({"beside": {"member": "gse", "loss": 1.0}}))
    objective = make_objective(cfg, build_network(cfg))
    rng = np.random.default_rng(1)
    support = rng.normal(size=(2, 2, *FC.shape)).astype(np.float32)
    query = rng.normal(size=(2, 2, *FC.shape)).astype(np.float32)

    def grads(frozen):
        tables = {"gse": (frozen[:4].reshape(2, 2, -1), frozen[4:].reshape(2, 2, -1))}
        with tf.GradientTape() as tape:
            loss, _ = objective(support, query, tables)
        return [g.numpy() for g in tape.gradient(loss, objective.trainable_variables)]

    agree = np.eye(8, dtype=np.float32)[[0, 0, 1, 1, 0, 0, 1, 1]]  # frozen rows say: classes 0, 1
    disagree = np.eye(8, dtype=np.float32)[[0, 0, 1, 1, 1, 1, 0, 0]]  # ...and swap the queries
    a, b = grads(agree), grads(disagree)
    assert len(a) == len(objective.trainable_variables) > len(objective.net.trainable_variables)
    assert not all(np.allclose(x, y) for x, y in zip(a, b))


@needs_gse
def test_training_beside_the_speech_embedding_resumes_with_its_scale(smoke_config, tmp_path):
    cfg = dataclasses.replace(with_train(smoke_config, episodes=20, val_every=10),
                              beside=BesideConfig(member="gse"))
    run = RunDir(tmp_path / "run")
    train_run(with_train(cfg, episodes=10), run.root)
    assert load_config(run.config_path).beside.member == "gse"
    run.config_path.write_text(dump_config(cfg))  # train on to 20 episodes, as if stopped at 10
    run.result_path.unlink()
    result = train_run(cfg, run.root, resume=True)
    assert result["steps"] == 20
    reader = tf.train.load_checkpoint(str(run.checkpoints))
    names = reader.get_variable_to_shape_map()
    scale = [n for n in names if n.startswith("objective/") and "log_t" in n and "optimizer" not in n]
    assert scale, sorted(names)[:20]
    assert float(reader.get_tensor(scale[0])) != pytest.approx(np.log(10.0))  # it was trained
