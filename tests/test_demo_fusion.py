"""`make demo`'s fused model (kws_proto/demo.py, kws_proto/eval/fused_run.py): the default run fused
with the Google speech embedding, its centres drawn from the corpus's training words only, scored
on the demo's episodes beside the other models, reused or fitted again.

The draw of the centre clips needs nothing; the demo on three tiny configs needs the optional
extra `gse` (`pip install -e '.[gse]'`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json

import numpy as np
import pytest

from kws_proto import demo
from kws_proto.config import dump_config
from kws_proto.data.dataset import load_manifest, load_splits
from kws_proto.eval.fused_run import ensure_fused, split_files
from kws_proto.eval.suites import BUILTIN

from conftest import needs_gse


def _training_draw(root, clips, seed):
    """The clips the centres must come from, drawn here from the manifest and splits.json."""
    manifest, splits = load_manifest(root), load_splits(root)
    rows = [c for c in manifest.clips if c.keyword in splits.train]
    pick = sorted(np.random.default_rng(seed).choice(len(rows), size=clips, replace=False))
    return [rows[i] for i in pick]


def test_centre_clips_are_drawn_from_the_training_words_only(synth_dataset):
    splits = load_splits(synth_dataset)
    files = split_files(synth_dataset, "train", clips=30, seed=0)
    want = _training_draw(synth_dataset, 30, 0)
    assert files == [synth_dataset / c.path for c in want]
    assert {f.parent.name for f in files} <= set(splits.train)
    assert not {f.parent.name for f in files} & set(splits.test + splits.validation)
    assert split_files(synth_dataset, "train", clips=30, seed=1) != files
    every = split_files(synth_dataset, "train", clips=10**6)  # fewer there: all of them
    assert len(every) == sum(c.keyword in splits.train for c in load_manifest(synth_dataset).clips)


def test_without_the_gse_extra_the_demo_says_so_and_skips_the_fused_model(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(demo, "gse_available", lambda: False)
    assert demo._fused_model([], tmp_path, 10, progress=False) == []
    assert "skipping the fused model" in capsys.readouterr().out
    assert not (tmp_path / demo.FUSED).exists()


# --- the demo on three tiny configs ---------------------------------------------------------

def _tiny(cfg, name, encoder, params):
    return dataclasses.replace(
        cfg, name=name, model=dataclasses.replace(cfg.model, encoder=encoder, params=params),
        train=dataclasses.replace(cfg.train, episodes=10, val_every=10))


@pytest.fixture(scope="module")
def demo_run(synth_dataset, tmp_path_factory):
    from kws_proto.config import load_config

    from conftest import REPO, TINY_SYNTH

    smoke = load_config(REPO / "experiments" / "configs" / "smoke.yaml",
                        overrides={"data": {"dataset": str(synth_dataset), **TINY_SYNTH}})
    tmp = tmp_path_factory.mktemp("demo")
    paths = []
    for cfg in (_tiny(smoke, demo.SEQUENTIAL, "conv4", {"filters": 4}),
                _tiny(smoke, demo.DESIGN, "protores", {"stem_filters": 4, "filters": [4, 6, 8]}),
                _tiny(smoke, demo.DEFAULT, "protores", {"stem_filters": 4, "filters": [4, 4, 4]})):
        paths.append(tmp / f"{cfg.name}.yaml")
        paths[-1].write_text(dump_config(cfg))
    suite = dataclasses.replace(BUILTIN, grid="2x1,2x2")
    answers = demo.run_demo(paths, tmp / "runs", [(suite, "on test words")], episodes=20,
                            n_query=3, clips=20, progress=False)
    return tmp / "runs", answers


@needs_gse
@pytest.mark.slow
def test_the_demo_scores_the_fused_model_on_the_same_episodes_and_answers_for_it(demo_run):
    runs, [(report, text)] = demo_run
    with open(report.parent / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["k_shot"]) for r in rows if r["encoder"] == "fusion"] == [
        (demo.FUSED, "1"), (demo.FUSED, "2")]
    acc = {r["model"]: float(r["accuracy"]) for r in rows if r["k_shot"] == "1"}
    assert {demo.DEFAULT, "gse", demo.FUSED} <= set(acc)
    fused, default, gse = (acc[n] for n in (demo.FUSED, demo.DEFAULT, "gse"))
    assert (f"{demo.DEFAULT} scores {100 * fused:.1f} % at 2-way 1-shot: "
            f"{100 * (fused - default):+.1f} ± ") in text  # paired: the same episodes
    assert f"and {100 * (fused - gse):+.1f} ± " in text
    assert text.startswith("On test words, ProtoRes (design) ")  # the first answer is kept


@needs_gse
@pytest.mark.slow
def test_the_fused_centres_are_the_mean_of_training_word_clips(demo_run, synth_dataset):
    from kws_proto.audio.loading import load_audio
    from kws_proto.spot.frozen import frozen_embedder

    runs, _ = demo_run
    record = json.loads((runs / demo.FUSED / "fusion.json").read_text())
    want = _training_draw(synth_dataset, 20, 0)
    listing = "\n".join(c.path for c in want)
    assert record["centre_data"] == {
        "path": str(synth_dataset.resolve()), "split": "train", "clips": 20, "seed": 0,
        "files_sha256": hashlib.sha256(listing.encode()).hexdigest()}
    assert [m["model"] for m in record["members"]] == [str((runs / demo.DEFAULT).resolve()), "gse"]
    gse = frozen_embedder("gse")
    f = gse.features
    audio = np.stack([load_audio(synth_dataset / c.path, f.sample_rate, f.clip_seconds, f.crop)
                      for c in want])
    np.testing.assert_allclose(record["members"][1]["centre"], gse(audio).mean(axis=0),
                               rtol=1e-4, atol=1e-5)


@needs_gse
@pytest.mark.slow
def test_the_fused_model_is_reused_then_fitted_again_when_a_member_changed(
        demo_run, synth_dataset, capsys):
    runs, _ = demo_run
    out = runs / demo.FUSED
    kept = json.loads((out / "fusion.json").read_text())
    again = ensure_fused(runs / demo.DEFAULT, out, synth_dataset, clips=20, progress=False)
    assert "reusing the fused model" in capsys.readouterr().out
    assert again.to_dict() == kept
    stale = json.loads(json.dumps(kept))
    stale["members"][0]["fingerprint"] = "0" * 64  # as if the run had been trained again
    (out / "fusion.json").write_text(json.dumps(stale))
    refit = ensure_fused(runs / demo.DEFAULT, out, synth_dataset, clips=20, progress=False)
    said = capsys.readouterr().out
    assert "fitting" in said and "the weights of" in said and "changed since" in said
    assert refit.members[0].fingerprint == kept["members"][0]["fingerprint"]
    assert json.loads((out / "fusion.json").read_text())["members"][0]["fingerprint"] != "0" * 64
