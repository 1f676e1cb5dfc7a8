"""Experiment configs: YAML in, typed dataclasses out, every mistake named."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
import yaml

from kws_proto.config import ExperimentConfig, dump_config, load_config, parse_overrides
from kws_proto.errors import ConfigError

from conftest import REPO


HEAD_CONFIGS = "gse_head"  # experiments/configs/gse_head/: configs of the head on the speech embedding


def _experiment_configs() -> list[Path]:
    return sorted(p for p in (REPO / "experiments" / "configs").rglob("*.yaml")
                  if p.parent.name != HEAD_CONFIGS)


def test_every_shipped_config_loads_and_is_named_after_its_file():
    """Including demo/ and levers/: a run directory is named after its config, so a config
    named otherwise would write over (or be refused by) another config's run; the head's
    configs (gse_head/) load as what they are."""
    from kws_proto.config.gse_head import load_gse_head_config

    paths = _experiment_configs()
    assert {"smoke", "conv4", "pretrained"} <= {p.stem for p in paths}
    assert {"demo", "levers"} <= {p.parent.name for p in paths}
    for p in paths:
        assert load_config(p).name == p.stem, p
    heads = sorted((REPO / "experiments" / "configs" / HEAD_CONFIGS).glob("*.yaml"))
    assert heads and all(load_gse_head_config(p).name == p.stem for p in heads)


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


# --- what a config file must be --------------------------------------------------

@pytest.mark.parametrize("text, kind", [("just a string", "str"), ("- 1\n- 2", "list"), ("42", "int")])
def test_a_config_that_is_not_a_mapping_names_the_file(tmp_path, text, kind):
    path = tmp_path / "scalar.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"scalar\.yaml: a config must be a mapping.*got {kind}"):
        load_config(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_an_empty_config_is_an_error_naming_the_file(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"empty\.yaml: empty config file"):
        load_config(path)


def test_a_config_naming_no_dataset_warns_naming_the_file(tmp_path):
    path = tmp_path / "nodata.yaml"
    path.write_text("train: {episodes: 10}")
    with pytest.warns(UserWarning, match=r"nodata\.yaml.*uses the default dataset data/synth"):
        cfg = load_config(path)
    assert cfg.data.dataset == str(Path("data/synth").resolve())
    (tmp_path / "nodataset.yaml").write_text("data: {synth_words: 20}")
    with pytest.warns(UserWarning, match=r"nodataset\.yaml.*data\.dataset"):
        load_config(tmp_path / "nodataset.yaml")


def test_a_config_naming_its_dataset_does_not_warn(tmp_path):
    path = tmp_path / "named.yaml"
    path.write_text("data: {dataset: data/x}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(path)


def test_every_shipped_config_names_its_dataset():
    """Directly or through ``extends``: none trains the default corpus by accident."""
    for p in _experiment_configs():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load_config(p)


# --- extends ----------------------------------------------------------------------------------

def test_extends_deep_merges_over_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: base\n"
        "data: {dataset: data/d, synth_words: 30}\n"
        "model: {encoder: ensemble, params: {member: protores, members: 2,"
        " member_params: {stem_filters: 8}}}\n"
        "augment: {time_masks: 2, time_mask_frames: 10}\n"
        "train: {episodes: 100, seed: 3}\n")
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\n"
        "model: {params: {members: 3, member_params: {filters: [8, 12, 16]}}}\n"
        "augment: {time_masks: 3}\n"
        "train: {seed: 1}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.name == "child"  # never inherited
    assert cfg.data.dataset == str(Path("data/d").resolve()) and cfg.data.synth_words == 30
    assert cfg.model.encoder == "ensemble" and cfg.model.params["members"] == 3
    assert cfg.model.params["member_params"]["stem_filters"] == 8
    assert cfg.model.params["member_params"]["filters"] == [8, 12, 16]
    assert (cfg.augment.time_masks, cfg.augment.time_mask_frames) == (3, 10)
    assert (cfg.train.episodes, cfg.train.seed) == (100, 1)
    assert "extends" not in dump_config(cfg)
    assert load_config(tmp_path / "base.yaml").name == "base"


def test_extends_replaces_lists_and_scalars(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "data: {dataset: d, synth_words: 30}\nmodel: {params: {filters: [8, 12, 16]}}")
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\ndata: {synth_words: 20}\nmodel: {params: {filters: [4, 4]}}")
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.data.synth_words == 20
    assert cfg.model.params["filters"] == [4, 4]  # the list replaced, not merged item by item


def test_extends_chains_with_paths_relative_to_each_file(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "root.yaml").write_text("data: {dataset: data/r}\ntrain: {episodes: 50, seed: 5}")
    (tmp_path / "a" / "mid.yaml").write_text("extends: ../root.yaml\ntrain: {episodes: 60}")
    (tmp_path / "a" / "b" / "leaf.yaml").write_text("extends: ../mid.yaml\ntrain: {lr: 0.01}")
    monkeypatch.chdir(tmp_path / "a" / "b")  # not where the bases are
    cfg = load_config("leaf.yaml")
    assert cfg.name == "leaf"
    assert (cfg.train.episodes, cfg.train.seed, cfg.train.lr) == (60, 5, 0.01)
    # a relative dataset stays relative to the current directory, as without extends
    assert cfg.data.dataset == str(tmp_path / "a" / "b" / "data" / "r")


def test_an_extends_cycle_names_the_files(tmp_path):
    (tmp_path / "one.yaml").write_text("extends: two.yaml\ndata: {dataset: d}")
    (tmp_path / "two.yaml").write_text("extends: one.yaml")
    with pytest.raises(ConfigError, match=r"extends cycle: .*one\.yaml -> .*two\.yaml -> .*one\.yaml"):
        load_config(tmp_path / "one.yaml")
    (tmp_path / "self.yaml").write_text("extends: self.yaml")
    with pytest.raises(ConfigError, match=r"extends cycle: .*self\.yaml -> .*self\.yaml"):
        load_config(tmp_path / "self.yaml")


def test_a_missing_base_is_named(tmp_path):
    (tmp_path / "child.yaml").write_text("extends: nowhere/base.yaml\ndata: {dataset: d}")
    with pytest.raises(ConfigError, match=r"child\.yaml: extends 'nowhere/base\.yaml'.*no such config"):
        load_config(tmp_path / "child.yaml")


@pytest.mark.parametrize("base_text, named", [
    ("", r"base\.yaml: empty config file"),
    ("[1, 2]", r"base\.yaml: a config must be a mapping"),
    ("train: {episodse: 1}", r"train\.episodse"),
])
def test_a_bad_base_is_named(tmp_path, base_text, named):
    (tmp_path / "base.yaml").write_text(base_text)
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ndata: {dataset: d}")
    with pytest.raises(ConfigError, match=named):
        load_config(tmp_path / "child.yaml")


def test_extends_must_be_a_path(tmp_path):
    (tmp_path / "child.yaml").write_text("extends: [a.yaml, b.yaml]\ndata: {dataset: d}")
    with pytest.raises(ConfigError, match=r"child\.yaml: extends="):
        load_config(tmp_path / "child.yaml")


def test_overrides_apply_after_extends(tmp_path):
    (tmp_path / "base.yaml").write_text("data: {dataset: d, synth_words: 30}\ntrain: {seed: 2}")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrain: {episodes: 70}")
    cfg = load_config(tmp_path / "child.yaml", overrides={"train": {"lr": 0.01}})
    assert (cfg.train.episodes, cfg.train.seed, cfg.train.lr) == (70, 2, 0.01)
    assert cfg.data.synth_words == 30


# --- --set ------------------------------------------------------------------------------------

def test_parse_overrides_types_and_nesting():
    got = parse_overrides(["train.seed=1", "train.lr=1e-3", "train.ema=0.5", "augment.enabled=false",
                           "data.dataset=data/x y",
                           "model.params.member_params.filters=[4, 8, 16]", "train.seed=2"])
    assert got == {"train": {"seed": 2, "lr": 0.001, "ema": 0.5},
                   "augment": {"enabled": False},
                   "data": {"dataset": "data/x y"},
                   "model": {"params": {"member_params": {"filters": [4, 8, 16]}}}}
    assert parse_overrides([]) == {}


def test_sets_merge_over_the_file_and_its_base(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "data: {dataset: d}\nmodel: {encoder: ensemble, params: {member: protores, members: 2}}\n"
        "augment: {time_masks: 2}\ntrain: {seed: 0, episodes: 90}")
    (tmp_path / "c.yaml").write_text("extends: base.yaml\ntrain: {episodes: 80}")
    cfg = load_config(tmp_path / "c.yaml", sets=["train.seed=1", "model.params.members=3",
                                                  "augment.time_masks=4", "train.lr=0.002",
                                                  "model.params.member_params={filters: [8, 8]}"])
    assert (cfg.train.seed, cfg.train.episodes, cfg.train.lr) == (1, 80, 0.002)
    assert cfg.model.params["members"] == 3 and cfg.model.params["member"] == "protores"
    assert cfg.augment.time_masks == 4
    assert cfg.model.params["member_params"]["filters"] == [8, 8]
    assert cfg.name == "c"


@pytest.mark.parametrize("item, named", [
    ("train.sede=1", r"unknown config key 'train\.sede'"),
    ("trian.seed=1", r"unknown config key 'trian'"),
    ("train.seed.x=1", r"'train\.seed\.x' does not exist"),
    ("name.x=1", r"'name\.x' does not exist"),
    ("extends=other.yaml", r"unknown config key 'extends'"),
])
def test_a_set_of_an_unknown_key_names_it(tmp_path, item, named):
    with pytest.raises(ConfigError, match=named):
        parse_overrides([item])
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: d}")
    with pytest.raises(ConfigError, match=named):
        load_config(path, sets=[item])


def test_a_set_of_an_unknown_encoder_parameter_names_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: d}")
    with pytest.raises(ConfigError, match="membres"):
        load_config(path, sets=["model.params.membres=3"])


@pytest.mark.parametrize("item", ["train.seed", "=1", "train..seed=1", "train.=1", ""])
def test_a_malformed_set_names_the_option(item):
    with pytest.raises(ConfigError, match=r"--set .*expected KEY=VALUE"):
        parse_overrides([item])


@pytest.mark.parametrize("item, named", [
    ("train.seed=[1", r"--set 'train\.seed=\[1'.*not valid YAML"),
    ("train.seed=one", r"train\.seed='one' must be of type int"),
    ("train.lr=fast", r"train\.lr='fast' must be a number"),
])
def test_a_set_of_a_bad_value_names_the_key(tmp_path, item, named):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: d}")
    with pytest.raises(ConfigError, match=named):
        load_config(path, sets=[item])


def test_train_command_takes_repeated_sets(tmp_path):
    from kws_proto.util.cli import build_parser, parse_args

    parser = build_parser("kws_proto.cli")
    args = parse_args(parser, ["train", "c.yaml", "--set", "train.seed=1",
                               "--set", "model.params.members=3"])
    assert args.sets == ["train.seed=1", "model.params.members=3"]
    assert parse_args(build_parser("kws_proto.cli"), ["train", "c.yaml"]).sets == []


# --- levers removed from the code -------------------------------------------------------------

def test_a_stored_config_naming_removed_levers_at_their_off_value_still_loads():
    """A run directory's config.yaml may name levers the package no longer has, switched off
    (the configs of runs trained while they were levers do): it loads, the keys dropped."""
    from kws_proto.model.pretrained import model_dir

    raw = yaml.safe_load((model_dir("protores_synth") / "config.yaml").read_text())
    fresh = ExperimentConfig.from_dict(raw)
    raw["augment"] |= {"speed": 0.0, "lowpass_prob": 0.0, "lowpass_hz": 3000.0, "freq_warp": 0.0}
    raw["data"] |= {"synth_festival_speakers": 0, "synth_festival_voices": []}
    cfg = ExperimentConfig.from_dict(raw)
    assert cfg == fresh
    assert not hasattr(cfg.augment, "speed") and not hasattr(cfg.data, "synth_festival_speakers")


def test_a_stored_run_naming_distillation_switched_off_loads(tmp_path):
    """A run trained while distillation was a lever stores train.distill/teacher/teacher_centre."""
    from kws_proto.model.runs import RunDir

    run = RunDir(tmp_path / "run")
    run.write_config(ExperimentConfig.from_dict({"data": {"dataset": "d"}, "train": {"episodes": 40}}))
    fresh = run.read_config()
    stored = yaml.safe_load(run.config_path.read_text())
    stored["train"] |= {"distill": 0.0, "teacher": "gse", "teacher_centre": True}
    run.config_path.write_text(yaml.safe_dump(stored))
    assert run.read_config() == fresh
    stored["train"]["distill"] = 0.5
    run.config_path.write_text(yaml.safe_dump(stored))
    with pytest.raises(ConfigError, match=r"train\.distill=0\.5: distillation .*distillation\.md"):
        run.read_config()


@pytest.mark.parametrize("section, key, value, lever, page", [
    ("augment", "speed", 0.1, "speed perturbation", "augmentation"),
    ("augment", "lowpass_prob", 0.5, "low-pass", "augmentation"),
    ("augment", "freq_warp", 0.1, "VTLP", "augmentation"),
    ("data", "synth_festival_speakers", 3, "Festival", "synthesisers"),
    ("train", "distill", 0.5, "distillation", "distillation"),
])
def test_a_removed_lever_switched_on_is_an_error_naming_it(tmp_path, section, key, value, lever,
                                                           page):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "d"}} | {section: {key: value}}
                                   if section != "data" else {"data": {"dataset": "d", key: value}}))
    with pytest.raises(ConfigError, match=rf"{section}\.{key}={value}: .*{lever}.*no longer part of "
                                          rf"the package \(experiments/{page}\.md\); drop the key"):
        load_config(path)


def test_cosine_distance_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"model\.distance='cosine'.*no longer part of the package"):
        ExperimentConfig.from_dict({"model": {"distance": "cosine"}})


# --- what the model section tells the model ---------------------------------------------------

def test_groups_is_an_ensembles_member_count_else_one():
    from kws_proto.config import ModelConfig
    from kws_proto.encoders import encoder_defaults

    assert ModelConfig("ensemble", {"members": 3}).groups == 3
    assert ModelConfig("ensemble", {"members": 2}).groups == 2
    assert ModelConfig("ensemble").groups == encoder_defaults("ensemble")["members"]
    assert ModelConfig("protores").groups == 1
    assert ModelConfig("conv4").groups == 1
