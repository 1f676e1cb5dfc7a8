"""Rejection learnt in training: config checks, the loss recomputed independently, a real run."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kws_proto.audio.features import FeatureConfig
from kws_proto.config import EpisodeConfig, ExperimentConfig, ModelConfig, OpenSetConfig
from kws_proto.errors import ConfigError
from kws_proto.model.loading import build_network
from kws_proto.model.objective import make_objective
from kws_proto.model.rejection import RejectionLoss
from kws_proto.model.runs import RunDir

from conftest import train_run, with_train

FC = FeatureConfig()


@pytest.mark.parametrize("d, says", [
    ({"openset": {"loss": 0.5}}, "episodes.unknown"),
    ({"openset": {"loss": 0.5}, "episodes": {"unknown": True, "silence": True}}, "silence"),
    ({"openset": {"loss": 0.5}, "episodes": {"unknown": True}, "beside": {"member": "gse"}}, "beside"),
    ({"openset": {"loss": 1.5}, "episodes": {"unknown": True}}, "openset.loss"),
])
def test_bad_open_set_configs_are_refused(d, says):
    with pytest.raises(ConfigError, match=says):
        ExperimentConfig.from_dict(d)


def _cfg(loss: float) -> ExperimentConfig:
    return ExperimentConfig(model=ModelConfig("conv4", {"filters": 4}),
                            episodes=EpisodeConfig(unknown=True), openset=OpenSetConfig(loss))


def _reference(emb, n_known, k_shot, n_query, ratio):
    """The rejection cross-entropy written out in numpy."""
    rows = n_known + 1
    protos = emb[: rows * k_shot].reshape(rows, k_shot, -1).mean(1)[:n_known]
    q = emb[rows * k_shot:]
    d = ((q[:, None, :] - protos[None]) ** 2).sum(-1)  # [rows * n_query, n_known]
    logits = -np.concatenate([d, np.full((len(q), 1), ratio * d.mean())], 1)
    logits -= logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    labels = np.repeat(np.arange(rows), n_query)  # the unknown row -> the none column
    return -logp[np.arange(len(q)), labels].mean()


def test_the_rejection_loss_is_the_none_columns_cross_entropy():
    net = build_network(_cfg(0.3))
    objective = make_objective(_cfg(0.3), net)
    assert isinstance(objective, RejectionLoss)
    rng = np.random.default_rng(0)
    support = rng.normal(size=(4, 2, *FC.shape)).astype(np.float32)  # 3 classes + unknown
    query = rng.normal(size=(4, 3, *FC.shape)).astype(np.float32)
    objective.term.log_ratio.assign(np.log(1.7))
    loss, acc = objective(support, query)
    emb = net.episode_embeddings(support, query, training=True).numpy()
    own, own_acc = net(support, query, training=True)
    expected = 0.7 * float(own) + 0.3 * _reference(emb, 3, 2, 3, 1.7)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
    assert float(acc) == float(own_acc)


def test_the_bar_falls_when_an_unknown_word_sits_on_a_prototype():
    """An unknown query equal to a class's only support: rejecting it needs a lower bar, and the
    gradient says so (d loss / d a > 0 for every positive distance between the classes)."""
    objective = make_objective(_cfg(1.0), build_network(_cfg(1.0)))
    rng = np.random.default_rng(1)
    support = rng.normal(size=(3, 1, *FC.shape)).astype(np.float32)  # 2 classes + unknown
    query = support[[0, 1, 0]]  # each class's own clip; the unknown row: class 0's clip
    with tf.GradientTape() as tape:
        loss, _ = objective(support, query)
    assert float(tape.gradient(loss, objective.term.log_ratio)) > 0


@pytest.fixture
def open_set_dataset(synth_dataset, tmp_path):
    """The tiny built-in corpus with 4 of its training words as an 'unknown' pool (links)."""
    root = tmp_path / "openset"
    shutil.copytree(synth_dataset, root, symlinks=True,
                    ignore=lambda d, names: [n for n in names if n == ".cache"])
    splits = json.loads((root / "splits.json").read_text())
    splits["unknown"], splits["train"] = splits["train"][:4], splits["train"][4:]
    (root / "splits.json").write_text(json.dumps(splits))
    return root


def test_training_with_rejection_writes_a_run_and_its_bar(smoke_config, open_set_dataset, tmp_path):
    cfg = dataclasses.replace(with_train(smoke_config, episodes=20, val_every=10),
                              episodes=dataclasses.replace(smoke_config.episodes, unknown=True),
                              openset=OpenSetConfig(0.5))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=str(open_set_dataset),
                                                            source="prepared"))
    run = RunDir(tmp_path / "run")
    result = train_run(cfg, run.root)
    assert result["steps"] == 20 and run.best_weights.is_file()
    reader = tf.train.load_checkpoint(str(run.checkpoints))
    bar = [n for n in reader.get_variable_to_shape_map()
           if n.startswith("objective/") and "log_ratio" in n and "optimizer" not in n]
    assert bar and float(reader.get_tensor(bar[0])) != 0.0  # it was trained
