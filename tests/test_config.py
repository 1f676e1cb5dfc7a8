"""Experiment configs: YAML in, typed dataclasses out, every mistake named."""

from __future__ import annotations

import dataclasses

import pytest

from kws_proto.config import ExperimentConfig, dump_config, load_config
from kws_proto.errors import ConfigError

from conftest import REPO


def test_every_shipped_config_loads_and_is_named_after_its_file():
    """Including demo/ and levers/: a run directory is named after its config, so a config
    named otherwise would write over (or be refused by) another config's run."""
    paths = sorted((REPO / "experiments" / "configs").rglob("*.yaml"))
    assert {"smoke", "conv4", "pretrained"} <= {p.stem for p in paths}
    assert {"demo", "levers"} <= {p.parent.name for p in paths}
    for p in paths:
        assert load_config(p).name == p.stem, p


def test_round_trip_through_yaml(tmp_path):
    import yaml

    cfg = load_config(REPO / "experiments" / "configs" / "smoke.yaml")
    changed = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=0.004, seed=7))
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(changed))
    again = ExperimentConfig.from_dict(yaml.safe_load(path.read_text()))
    assert again == changed
    assert again.train.lr == 0.004 and again.model.params == cfg.model.params


@pytest.mark.parametrize(
    "text, named",
    [
        ("train: {episodse: 10}", "train.episodse"),
        ("modle: {encoder: conv4}", "modle"),
        ("train: {episodes: ten}", "train.episodes"),
        ("train: {lr: -1}", "train.lr"),
        ("train: {ema: 1.0}", "train.ema"),
        ("train: {feed_cores: -1}", "train.feed_cores"),
        ("episodes: {n_way: 1}", "n_way"),
        ("features: {n_mfcc: 0}", "n_mfcc"),
        ("data: {source: web}", "data.source"),
        ("train: [1, 2]", "train"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, named):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {episodes: [}")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_relative_dataset_is_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: some/where}")
    assert load_config(path).data.dataset == str(tmp_path / "some" / "where")
