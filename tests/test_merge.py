"""`kws-prep merge`: the built-in corpus plus another folder's words as training classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import assert_close_to_scale
from data_prep.cli import main as prep_main
from data_prep.espeak import Voice, get_synthesizer
from data_prep.folder import index_folder
from data_prep.merge import keyword_labels, merge_datasets
from kws_proto.data.experiment import open_data
from kws_proto.data.dataset import load_manifest, load_splits, noise_files
from kws_proto.data.episodes import EpisodeSampler
from kws_proto.errors import DatasetError
from kws_proto.audio.features import FeatureConfig

EXTRA_WORDS = ("lantern", "blue whale")


def _prepared(root: Path, words, name: str = "prepared") -> Path:
    """A prepared folder of ``words``, four eSpeak NG voices each (speakers spk0..spk3), 8 kHz WAV."""
    src = root / "src"
    synth = get_synthesizer()
    for word in words:
        (src / word).mkdir(parents=True)
        for i, variant in enumerate(("m1", "m3", "f2", "f4")):
            y = synth.synthesize(word, Voice("en-gb", variant, 150 + 10 * i, 40), seed=i)
            y = soxr.resample(y.astype(np.float32) / 32768.0, synth.sample_rate, 8000)
            sf.write(src / word / f"{word}_spk{i}_0.wav", y, 8000)
    index_folder(src, root / name, progress=False, workers=1)
    return root / name


@pytest.fixture(scope="module")
def extra(tmp_path_factory) -> Path:
    """A prepared folder of two words not in the tiny corpus (link name ``prepared``)."""
    return _prepared(tmp_path_factory.mktemp("extra"), EXTRA_WORDS)


@pytest.fixture(scope="module")
def base_words(synth_dataset) -> tuple[str, str]:
    """A training word and a test word of the tiny corpus."""
    s = load_splits(synth_dataset)
    return s.train[0], s.test[0]


@pytest.fixture(scope="module")
def other(tmp_path_factory, base_words) -> Path:
    """A prepared folder ``other`` sharing a training and a test word with the tiny corpus and
    ``lantern`` with ``extra``."""
    return _prepared(tmp_path_factory.mktemp("other"), (*base_words, "lantern"), name="other")


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


def test_a_source_given_twice_is_refused_and_nothing_is_written(synth_dataset, extra, tmp_path):
    out = tmp_path / "twice"
    for extras in ([synth_dataset], [extra, extra]):
        with pytest.raises(DatasetError, match="given twice"):
            merge_datasets(out, synth_dataset, extras)
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


@pytest.fixture(scope="module")
def joined(synth_dataset, extra, other, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("joined") / "synth+extra+other"
    return out, merge_datasets(out, synth_dataset, [extra, other])


def _rows(m, keyword: str):
    return [c for c in m.clips if c.keyword == keyword]


def test_a_word_in_several_sources_is_one_class(joined, synth_dataset, base_words):
    out, report = joined
    train_word, _ = base_words
    m, s, base_s = load_manifest(out), load_splits(out), load_splits(synth_dataset)
    n_base = len(_rows(load_manifest(synth_dataset), train_word))
    grown = _rows(m, train_word)
    assert len(grown) == n_base + 4
    assert {c.speaker.split(":")[0] for c in grown} == {"base", "other"}
    assert len({c.speaker for c in grown if c.speaker.startswith("other:")}) == 4
    # two extras' "lantern" (the base lacks it): one new training class of 8 clips
    lantern = _rows(m, "lantern")
    assert len(lantern) == 8 and {c.path.split("/")[0] for c in lantern} == {"prepared", "other"}
    assert s.train == base_s.train + tuple(s.extra["merged_training_words"])
    assert s.extra["merged_training_words"] == sorted({"lantern", *EXTRA_WORDS})
    assert report["merge"]["shared"][train_word]["as"] == "joined"
    assert report["merge"]["shared"]["lantern"] == {
        "sources": ["prepared", "other"], "clips": {"prepared": 4, "other": 4}, "as": "joined"}
    assert report["counts"]["joined_words"] == 2 and report["counts"]["joined_clips"] == 4 + 8


def test_a_base_test_word_gets_no_clips_from_the_extras(joined, synth_dataset, base_words):
    out, report = joined
    _, test_word = base_words
    m, s, base_s = load_manifest(out), load_splits(out), load_splits(synth_dataset)
    assert (s.validation, s.test, s.unknown) == (base_s.validation, base_s.test, base_s.unknown)
    kept = _rows(m, test_word)
    assert {c.path for c in kept} == {f"base/{c.path}" for c in _rows(load_manifest(synth_dataset), test_word)}
    assert len(m) == len(load_manifest(synth_dataset)) + 2 * 4 + 3 * 4 - 4
    by_name = {src["name"]: src for src in report["merge"]["sources"]}
    assert by_name["other"]["left_out"] == {"clips": 4, "words": {test_word: 4}}
    assert by_name["other"]["used_clips"] == 8 and by_name["prepared"]["left_out"]["clips"] == 0
    assert report["merge"]["shared"][test_word]["as"] == "left out"
    assert (report["counts"]["left_out_words"], report["counts"]["left_out_clips"]) == (1, 4)
    assert json.loads((out / "report.json").read_text()) == report


def test_speaker_disjoint_episodes_of_a_joined_word_draw_both_sources(joined, base_words):
    out, _ = joined
    m = load_manifest(out)
    sampler = EpisodeSampler(m, [base_words[0], "lantern"], n_way=1, k_shot=2, n_query=2, seed=3,
                             speaker_disjoint=True)
    spk = m.speakers().astype(str)
    sources = {}
    for i in range(60):
        ep = sampler.sample(i)
        assert not set(spk[ep.support.ravel()]) & set(spk[ep.query.ravel()])
        rows = np.concatenate([ep.support.ravel(), ep.query.ravel()])
        sources.setdefault(ep.classes[0], set()).update(m.clips[r].path.split("/")[0] for r in rows)
    assert sources == {base_words[0]: {"base", "other"}, "lantern": {"prepared", "other"}}
    # every training class of the merged folder can be drawn speaker-disjoint
    EpisodeSampler(m, load_splits(out).train, n_way=5, k_shot=1, n_query=1, speaker_disjoint=True)


def test_keep_apart_names_each_extras_copy_and_leaves_nothing_out(synth_dataset, extra, other,
                                                                   base_words, tmp_path):
    out = tmp_path / "apart"
    report = merge_datasets(out, synth_dataset, [extra, other], keep_apart=True)
    train_word, test_word = base_words
    m, s, base_s = load_manifest(out), load_splits(out), load_splits(synth_dataset)
    base_m = load_manifest(synth_dataset)
    assert len(m) == len(base_m) + len(load_manifest(extra)) + len(load_manifest(other))
    assert (s.validation, s.test) == (base_s.validation, base_s.test)
    for word in base_words:  # the base's classes hold the base's clips only
        assert len(_rows(m, word)) == len(_rows(base_m, word))
    renamed = [f"other:{train_word}", f"other:{test_word}", "other:lantern", "prepared:lantern"]
    for label in renamed:
        assert len(_rows(m, label)) == 4 and label in s.train
    assert "lantern" not in m.keywords and "blue whale" in s.train
    assert report["counts"]["left_out_clips"] == 0
    assert report["counts"]["held_out_trained_clips"] == 4
    assert report["merge"]["sources"][2]["renamed"] == {
        train_word: f"other:{train_word}", test_word: f"other:{test_word}", "lantern": "other:lantern"}


def test_keyword_labels_rules_and_a_clashing_name():
    roles = {"go": "train", "yes": "test", "no": "validation", "up": "unknown", "odd": "none"}
    extras = {"a": ["go", "yes", "no", "up", "odd", "owl", "cat"], "b": ["owl", "dog"]}
    assert keyword_labels(roles, extras) == {
        "a": {"go": "go", "yes": None, "no": None, "up": None, "odd": None, "owl": "owl", "cat": "cat"},
        "b": {"owl": "owl", "dog": "dog"}}
    apart = keyword_labels(roles, extras, keep_apart=True)
    assert apart["a"] == {"go": "a:go", "yes": "a:yes", "no": "a:no", "up": "a:up", "odd": "a:odd",
                          "owl": "a:owl", "cat": "cat"}
    assert apart["b"] == {"owl": "b:owl", "dog": "dog"}
    with pytest.raises(DatasetError, match="'a:go'"):
        keyword_labels(roles, {"a": ["go", "a:go"]}, keep_apart=True)


def test_words_differing_in_case_stay_apart_and_are_reported(synth_dataset, extra, tmp_path):
    raw = tmp_path / "raw"
    for p in (extra / "lantern").iterdir():  # the same recordings under "Lantern"
        (raw / "Lantern").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, raw / "Lantern" / p.name.replace("lantern", "Lantern"))
    cased = tmp_path / "cased"
    index_folder(raw, cased, progress=False, workers=1)
    report = merge_datasets(tmp_path / "m", synth_dataset, [extra, cased])
    m = load_manifest(tmp_path / "m")
    assert len(_rows(m, "lantern")) == 4 and len(_rows(m, "Lantern")) == 4
    assert report["merge"]["case_only"] == [{"words": ["Lantern", "lantern"],
                                             "sources": ["cased", "prepared"]}]
    assert report["counts"]["shared_words"] == 0


def test_cli_prints_what_was_joined_and_left_out(synth_dataset, extra, other, base_words,
                                                 tmp_path, capsys):
    out = tmp_path / "m"
    assert prep_main(["merge", str(out), str(synth_dataset), str(extra), str(other)]) == 0
    printed = capsys.readouterr().out
    assert "3 words in more than one source: 2 joined (12 clips of the extras), 1 left out" in printed
    assert f"left out 4 clips of other in BASE's validation, test or unknown words: {base_words[1]}" in printed
    assert prep_main(["merge", str(out), str(synth_dataset), str(extra), str(other), "--keep-apart"]) == 0
    printed = capsys.readouterr().out
    assert "added prepared (8 clips, 2 words), other (12 clips, 3 words)" in printed
    assert "kept apart as NAME:WORD" in printed and "train as other:WORD (4 clips)" in printed
    assert len(load_manifest(out)) == len(load_manifest(synth_dataset)) + 20
