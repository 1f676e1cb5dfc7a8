"""`kws-prep merge`: the built-in corpus plus another folder's words as training classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import assert_close_to_scale
from data_prep.cli import main as prep_main
from data_prep.espeak import Voice, get_synthesizer
from data_prep.folder import index_folder
from data_prep.merge import merge_datasets
from kws_proto.data.experiment import open_data
from kws_proto.data.dataset import load_manifest, load_splits, noise_files
from kws_proto.data.episodes import EpisodeSampler
from kws_proto.errors import DatasetError
from kws_proto.audio.features import FeatureConfig

EXTRA_WORDS = ("lantern", "blue whale")


@pytest.fixture(scope="module")
def extra(tmp_path_factory) -> Path:
    """A prepared folder of two words (not in the tiny corpus), four voices each, 8 kHz WAV."""
    src = tmp_path_factory.mktemp("extra") / "src"
    synth = get_synthesizer()
    for word in EXTRA_WORDS:
        (src / word).mkdir(parents=True)
        for i, variant in enumerate(("m1", "m3", "f2", "f4")):
            y = synth.synthesize(word, Voice("en-gb", variant, 150 + 10 * i, 40), seed=i)
            y = soxr.resample(y.astype(np.float32) / 32768.0, synth.sample_rate, 8000)
            sf.write(src / word / f"{word}_spk{i}_0.wav", y, 8000)
    out = src.parent / "prepared"
    index_folder(src, out, progress=False, workers=1)
    return out


@pytest.fixture(scope="module")
def merged(synth_dataset, extra, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("merged") / "synth+extra"
    merge_datasets(out, synth_dataset, [extra])
    return out


def test_merge_keeps_the_base_split_and_adds_training_words(merged, synth_dataset, extra):
    base_m, extra_m = load_manifest(synth_dataset), load_manifest(extra)
    m, s, base_s = load_manifest(merged), load_splits(merged), load_splits(synth_dataset)
    assert len(m) == len(base_m) + len(extra_m)
    assert s.validation == base_s.validation and s.test == base_s.test
    assert set(s.train) == set(base_s.train) | set(EXTRA_WORDS)
    assert s.extra["merged_training_words"] == sorted(EXTRA_WORDS)
    # every row is its source's row under the source's link, speakers prefixed by source
    rows = {c.path: c for c in m.clips}
    for c in extra_m.clips:
        r = rows[f"prepared/{c.path}"]
        assert (r.keyword, r.speaker, r.sample_rate) == (c.keyword, f"prepared:{c.speaker}", 8000)
        assert (merged / r.path).resolve() == (extra / c.path).resolve()
    for c in base_m.clips[:20]:
        assert rows[f"base/{c.path}"].speaker == (f"base:{c.speaker}" if c.speaker else "")
    assert [p.resolve() for p in noise_files(merged)] == [p.resolve() for p in noise_files(synth_dataset)]
    report = json.loads((merged / "report.json").read_text())
    assert [s["clips"] for s in report["merge"]["sources"]] == [len(base_m), len(extra_m)]


def test_merged_folder_trains_on_both_sources(merged, extra):
    """The feature cache reads through the links, and training episodes draw the added words."""
    fc = FeatureConfig()
    data = open_data(merged, fc, progress=False)
    m = load_manifest(merged)
    assert data.features.shape[0] == len(m)
    own = open_data(extra, fc, progress=False)
    extra_rows = [i for i, c in enumerate(m.clips) if c.path.startswith("prepared/")]
    own_rows = {c.path: i for i, c in enumerate(load_manifest(extra).clips)}
    for i in extra_rows:
        j = own_rows[m.clips[i].path.removeprefix("prepared/")]
        assert_close_to_scale(data.features[i], own.features[j])  # MFCC of another batch
    sampler = EpisodeSampler(m, load_splits(merged).train, n_way=5, k_shot=2, n_query=2, seed=0)
    drawn = {name for i in range(200) for name in sampler.sample(i).classes}
    assert set(EXTRA_WORDS) <= drawn


def test_a_keyword_in_two_sources_is_refused_and_nothing_is_written(synth_dataset, tmp_path):
    out = tmp_path / "twice"
    with pytest.raises(DatasetError) as e:
        merge_datasets(out, synth_dataset, [synth_dataset])
    word = load_manifest(synth_dataset).keywords[0]
    assert repr(word) in str(e.value) and str(synth_dataset) in str(e.value)
    assert not out.exists()


def test_merge_refuses_an_output_inside_a_source_and_a_missing_source(synth_dataset, extra, tmp_path):
    with pytest.raises(DatasetError, match="inside a source"):
        merge_datasets(extra / "merged", synth_dataset, [extra])
    with pytest.raises(DatasetError, match="no-such-folder"):
        merge_datasets(tmp_path / "m", synth_dataset, [tmp_path / "no-such-folder"])


def test_cli_merge_twice_replaces_the_first(synth_dataset, extra, tmp_path, capsys):
    out = tmp_path / "m"
    for _ in range(2):
        assert prep_main(["merge", str(out), str(synth_dataset), str(extra)]) == 0
    printed = capsys.readouterr().out
    assert f"added prepared ({len(load_manifest(extra))} clips, 2 words)" in printed
    assert len(load_manifest(out)) == len(load_manifest(synth_dataset)) + len(load_manifest(extra))
