"""Export: SavedModel and TFLite, loaded back through their own runtimes, embed raw audio as the
package's Python path does, and a bank made with one classifies as with the other."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from kws_proto.cli import main
from kws_proto.errors import ConfigError
from kws_proto.spot.export import PARITY_TOLERANCE, EmbeddingGraph, export_model, load_exported
from kws_proto.audio.features import FeatureConfig
from kws_proto.spot.decision import calibrate_threshold, keyword_distances
from kws_proto.spot.spotter import classifications


@pytest.fixture(scope="module")
def exported(keyword_spotter, trained_run, tmp_path_factory):
    """``{format: path}`` written by the ``export`` command."""
    root = tmp_path_factory.mktemp("export")
    out = {"savedmodel": root / "embedder", "tflite": root / "embedder.tflite"}
    for fmt, path in out.items():
        assert main(["export", str(trained_run), str(path), "--format", fmt]) == 0
    return out


@pytest.fixture(scope="module")
def python_path(trained_run):
    """The package's Python path: the spotter on its TensorFlow backend."""
    from kws_proto.spot.spotter import KeywordSpotter

    return KeywordSpotter.from_model(trained_run, backend="tf")


@pytest.fixture(scope="module")
def clips(keyword_spotter, keyword_clips):
    """``(names, audio [n, num_samples])``: real clips of the three keywords, plus noise and silence."""
    names, paths = [], []
    for name, ps in keyword_clips["keywords"].items():
        names += [name] * 8
        paths += ps[:8]
    audio = keyword_spotter.load_clips(paths)
    rng = np.random.default_rng(0)
    extra = np.stack([0.1 * rng.standard_normal(audio.shape[1]), np.zeros(audio.shape[1])])
    return names, np.concatenate([audio, extra.astype(np.float32)])


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
def test_exported_model_embeds_like_the_python_path(python_path, exported, clips, fmt):
    keyword_spotter = python_path
    _, audio = clips
    model = load_exported(exported[fmt])
    ref = keyword_spotter.embed(audio)  # [n, d]
    got = model(audio)
    assert got.shape == ref.shape == (len(audio), keyword_spotter.embedding_dim)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    print(f"\n{fmt}: max abs embedding difference {err:.2e} of the largest |embedding|")
    assert err <= PARITY_TOLERANCE
    assert model.metadata["fingerprint"] == keyword_spotter.fingerprint
    assert model.metadata["features"] == keyword_spotter.features.to_dict()
    np.testing.assert_allclose(model(audio[3:5]), got[3:5], rtol=0, atol=1e-5 * np.abs(ref).max())


def test_a_bank_from_the_tflite_model_classifies_like_the_python_one(python_path, exported,
                                                                      clips):
    keyword_spotter = python_path
    names, audio = clips
    lite = load_exported(exported["tflite"])
    support = [i for i in range(len(names)) if i % 8 < 4]  # 4 clips of each keyword enrol it
    query = [i for i in range(len(audio)) if i not in support]
    banks, decided = {}, {}  # enrolled with each model's embeddings, by the spotter's rule
    for which, embed in (("python", keyword_spotter.embed), ("tflite", lite)):
        emb = embed(audio)
        bank = banks[which] = keyword_spotter.new_bank()
        for name in dict.fromkeys(names):
            rows = [i for i in support if names[i] == name]
            t, info = calibrate_threshold(emb[rows])
            bank.add(bank.make_keyword(name, emb[rows], [str(i) for i in rows], t, info))
        for other in ("python", "tflite"):  # each bank applied to each model's embeddings
            e = keyword_spotter.embed(audio[query]) if other == "python" else lite(audio[query])
            decided[which, other] = [(c.keyword, c.nearest) for c in classifications(
                bank, keyword_distances(bank, e), query)]
    np.testing.assert_allclose(banks["python"].thresholds, banks["tflite"].thresholds, rtol=1e-3)
    reference = decided["python", "python"]
    assert all(v == reference for v in decided.values())


def test_export_refuses_to_overwrite_and_unknown_formats(keyword_spotter, exported, capsys):
    with pytest.raises(ConfigError, match="already exists"):
        export_model(keyword_spotter, exported["savedmodel"], "savedmodel")
    with pytest.raises(ConfigError, match="format='onnx'"):
        export_model(keyword_spotter, exported["savedmodel"].with_name("x"), "onnx")
    export_model(keyword_spotter, exported["tflite"], "tflite", force=True)
    meta = json.loads(exported["tflite"].with_name("embedder.tflite.json").read_text())
    assert meta["input"] == [None, keyword_spotter.features.num_samples]


def test_tflite_needs_a_top_db_floor_and_spectrum_is_checked(tmp_path):
    # without the floor the spectrum is float64, which TFLite's built-in ops do not take
    no_floor = SimpleNamespace(features=FeatureConfig(top_db=None))
    with pytest.raises(ConfigError, match="top_db=None"):
        export_model(no_floor, tmp_path / "x.tflite", "tflite")
    assert not (tmp_path / "x.tflite").exists()
    with pytest.raises(ConfigError, match="spectrum='rfft'"):
        EmbeddingGraph(encoder=None, features=FeatureConfig(), spectrum="rfft")
