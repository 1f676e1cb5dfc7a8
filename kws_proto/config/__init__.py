"""Typed experiment configs: frozen dataclasses loaded from YAML and written into every run.

An experiment YAML has one section per dataclass of :mod:`~kws_proto.config.schema`; every key
is optional and unknown keys are a :class:`ConfigError` naming the key path, so a typo never
silently falls back to a default::

    name: protores
    data: {dataset: data/synth, source: synth, synth_words: 150, synth_speakers: 40}
    features: {window_ms: 40, hop_ms: 20, n_mfcc: 40}
    augment: {enabled: true}
    model: {encoder: protores, params: {layout: temporal}}
    episodes: {n_way: 5, k_shot: 5, n_query: 5}
    train: {episodes: 3000, lr: 0.001, seed: 0}
    head: {kind: cl2n}

The modules, one job each:

- :mod:`~kws_proto.config.schema`: the dataclasses and their checks;
- :mod:`~kws_proto.config.retired`: keys of levers the package no longer has, which a stored
  run's ``config.yaml`` may still name;
- :mod:`~kws_proto.config.loading`: YAML files, ``extends`` chains, :func:`dump_config`;
- :mod:`~kws_proto.config.overrides`: ``--set KEY.PATH=VALUE`` (:func:`parse_overrides`);
- :mod:`~kws_proto.config.paths`: data paths, absolute when loaded and relative to the run
  directory in its ``config.yaml`` (:func:`paths_for_run`, :func:`paths_from_run`).

Variations are ``dataclasses.replace`` of a loaded config.
"""

from __future__ import annotations

from kws_proto.config.loading import dump_config, load_config, read_config_mapping
from kws_proto.config.overrides import parse_overrides
from kws_proto.config.paths import paths_for_run, paths_from_run, resolve_paths
from kws_proto.config.retired import RETIRED
from kws_proto.config.schema import (FROZEN, HEADS, SOURCES, BesideConfig, DataConfig,
                                     EpisodeConfig, ExperimentConfig, HeadConfig, ModelConfig,
                                     OpenSetConfig, TrainConfig, same_training)
from kws_proto.errors import ConfigError

__all__ = [
    "FROZEN", "HEADS", "RETIRED", "SOURCES", "BesideConfig", "ConfigError", "DataConfig",
    "EpisodeConfig", "ExperimentConfig", "HeadConfig", "ModelConfig", "OpenSetConfig",
    "TrainConfig", "dump_config", "load_config", "parse_overrides", "paths_for_run", "paths_from_run", "read_config_mapping", "resolve_paths",
    "same_training",
]
