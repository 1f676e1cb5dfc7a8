"""ensure_dataset: the built-in corpus is built from the config's settings and never silently reused."""

from __future__ import annotations

import json

import pytest

from kws_proto.config import DataConfig
from data_prep.builtin import ensure_dataset
from kws_proto.errors import ConfigError, DatasetError


def _words(path, words):
    path.write_text("# test vocabulary\n" + "\n".join(words) + "\n")
    return str(path)


def test_corpus_from_a_words_file_is_built_once_and_checked(tmp_path):
    vocab = ["lantern", "walrus", "teapot", "meadow", "pickle", "rocket", "velvet", "harbor"]
    cfg = DataConfig(dataset=str(tmp_path / "c"), source="synth", synth_words=6, synth_speakers=2,
                     synth_words_file=_words(tmp_path / "w.txt", vocab))
    root = ensure_dataset(cfg, progress=False)
    made = json.loads((root / "report.json").read_text())["synth"]["words"]
    assert len(made) == 6 and set(made) <= set(vocab)
    assert ensure_dataset(cfg, progress=False) == root  # same settings: reused
    other = DataConfig(**{**cfg.__dict__, "synth_words_file": _words(tmp_path / "v.txt", vocab[::-1][:7] + ["gizmo"])})
    with pytest.raises(DatasetError, match="another vocabulary"):
        ensure_dataset(other, progress=False)
    default_vocab = DataConfig(**{**cfg.__dict__, "synth_words_file": ""})
    with pytest.raises(DatasetError, match="another vocabulary"):
        ensure_dataset(default_vocab, progress=False)


def test_excluded_word_in_the_words_file_is_named(tmp_path):
    cfg = DataConfig(dataset=str(tmp_path / "c"), source="synth", synth_words=2, synth_speakers=1,
                     synth_words_file=_words(tmp_path / "w.txt", ["lantern", "alexa", "teapot"]))
    with pytest.raises(ConfigError, match="'alexa' is excluded"):
        ensure_dataset(cfg, progress=False)
