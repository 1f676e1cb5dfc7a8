"""The keyword commands' fast path: the exported encoder in LiteRT, without TensorFlow, gives the
answers of the TensorFlow path (banks interchangeable); the Google speech embedding and a fused
model run there too; a batch survives its unreadable files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, gse_installed
from kws_proto.cli import main
from kws_proto.errors import AudioError, CheckpointError, ConfigError
from kws_proto.spot.backends import (BACKEND_ENV, find_export, recorded_fingerprints,
                                     resolve_backend)
from kws_proto.spot.bank import load_bank, save_bank
from kws_proto.spot.export import PARITY_TOLERANCE
from kws_proto.spot.lite import litert_available
from kws_proto.spot.spotter import KeywordSpotter, Unreadable

needs_litert = pytest.mark.skipif(not litert_available(), reason="ai-edge-litert is not installed "
                                  "(pip install -e '.[lite]'; the dev extra brings it)")
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="module")
def spotters(trained_run):
    """``{"tf": spotter, "lite": spotter}`` of one encoder."""
    if not litert_available():
        pytest.skip("ai-edge-litert is not installed (pip install -e '.[lite]')")
    return {b: KeywordSpotter.from_model(trained_run, backend=b) for b in ("tf", "lite")}


@pytest.fixture
def corrupt(tmp_path):
    """A FLAC clip of tests/data cut short, and a file of garbage with a .wav name."""
    clip = sorted((DATA / "picovoice").rglob("*.flac"))[0]
    cut = tmp_path / "cut.flac"
    cut.write_bytes(clip.read_bytes()[:2000])
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)))
    return cut, junk


@needs_litert
def test_both_backends_embed_alike_and_share_one_fingerprint(spotters, keyword_clips):
    tf_, lite = spotters["tf"], spotters["lite"]
    assert (tf_.backend, lite.backend) == ("tf", "lite")
    assert lite.fingerprint == tf_.fingerprint and lite.embedding_dim == tf_.embedding_dim
    paths = [p for ps in keyword_clips["keywords"].values() for p in ps[:4]]
    audio = tf_.load_clips(paths)
    ref = tf_.embed(audio)
    err = np.abs(lite.embed(audio) - ref).max() / np.abs(ref).max()
    assert err <= PARITY_TOLERANCE, err


@needs_litert
def test_banks_made_either_way_are_interchangeable(spotters, keyword_clips, tmp_path):
    """A bank enrolled on one backend classifies on the other exactly as on its own."""
    names = list(keyword_clips["keywords"])
    queries = [p for ps in keyword_clips["keywords"].values() for p in ps[5:12]]
    queries += list(keyword_clips["unknown"][:6])
    banks = {}
    for b, spotter in spotters.items():
        bank = spotter.new_bank()
        for name in names:
            spotter.enroll(bank, name, keyword_clips["keywords"][name][:5])
        banks[b] = load_bank(save_bank(bank, tmp_path / f"{b}.npz"))
    np.testing.assert_allclose(banks["tf"].thresholds, banks["lite"].thresholds, rtol=1e-2)
    for bank in banks.values():
        answers = {b: [(c.keyword, c.nearest) for c in s.classify(bank, queries)]
                   for b, s in spotters.items()}
        assert answers["tf"] == answers["lite"]


@pytest.fixture(scope="module")
def fused_model(trained_run, tmp_path_factory):
    """A fused model of the trained run and the Google speech embedding (centres of 4 clips)."""
    if not gse_installed():
        pytest.skip("the optional extra 'gse' is not installed: pip install -e '.[gse]'")
    from kws_proto.spot.fusion import fuse_models

    out = tmp_path_factory.mktemp("fused") / "fused"
    fuse_models([trained_run, "gse"], DATA, out, clips=4, seed=0, backend="lite", progress=False)
    return out


def _model(kind: str, request) -> str:
    """The model the commands enrol with: the trained run (its export built first), ``gse``, or
    a fused model's folder."""
    if kind == "gse":
        if not gse_installed():
            pytest.skip("the optional extra 'gse' is not installed: pip install -e '.[gse]'")
        return "gse"
    if kind == "fused":
        return str(request.getfixturevalue("fused_model"))
    run = request.getfixturevalue("trained_run")
    KeywordSpotter.from_model(run, backend="lite")  # the export exists from here on
    return str(run)


@needs_litert
@pytest.mark.parametrize("kind", ["run", "gse", "fused"])
def test_the_commands_run_without_tensorflow(kind, request, keyword_clips, tmp_path):
    """enroll, classify and detect in fresh interpreters on the ``auto`` backend: LiteRT embeds,
    and neither TensorFlow nor Keras is imported."""
    model = _model(kind, request)
    bank = tmp_path / "b.npz"
    support = list(keyword_clips["keywords"].values())[0]
    code = ("import sys; from kws_proto.cli import main; rc = main(sys.argv[1:]); "
            "print('TF' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'no TF', "
            "'ai_edge_litert' in sys.modules); sys.exit(rc)")
    env = {**os.environ, BACKEND_ENV: "auto"}
    for argv in (["enroll", model, "--bank", str(bank), "--keyword", "kw", *map(str, support[:5])],
                 ["classify", str(bank), str(support[6])],
                 ["detect", str(bank), str(support[7])]):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                             cwd=REPO, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "no TF True", argv


@needs_litert
def test_the_export_is_built_once_and_rebuilt_when_the_weights_change(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoints", "tb",
                                                                    "embedder-*"))
    assert find_export(run) is None
    first = KeywordSpotter.from_model(run, backend="lite")
    export = find_export(run)
    assert export is not None and export.name == f"embedder-{first.fingerprint[:16]}.tflite"
    stamp = export.stat().st_mtime_ns
    again = KeywordSpotter.from_model(run, backend="lite")
    assert again.fingerprint == first.fingerprint and export.stat().st_mtime_ns == stamp
    # an export whose metadata disagrees with the weights is refused when TensorFlow checks it
    meta = export.with_name(export.name + ".json")
    m = json.loads(meta.read_text())
    meta.write_text(json.dumps({**m, "fingerprint": "0" * 64}))
    assert ("0" * 64) in [fp for _, fp in recorded_fingerprints(run)]
    with pytest.raises(CheckpointError, match="records 0000000000000000"):
        KeywordSpotter.from_model(run, backend="tf")
    # other weights: the old export no longer matches, a new one is made and the old removed
    with open(run / "config.yaml", "a") as f:
        f.write("\n# edited\n")
    assert find_export(run) is None
    KeywordSpotter.from_model(run, backend="lite")
    assert len(list(run.glob("embedder-*.tflite"))) == 1 and find_export(run) is not None


@needs_litert
def test_the_shipped_encoder_builds_its_export_once_and_it_agrees_with_its_record():
    from kws_proto.model.pretrained import TRAINED, model_dir, read_record
    from kws_proto.spot.backends import open_embedder

    open_embedder(model_dir(TRAINED), "lite")  # built beside it on first use (not kept in git: 3 MB)
    export = find_export(model_dir(TRAINED))
    assert export is not None, "the shipped encoder's folder must be writable for its export"
    assert export.stat().st_size <= 4 * 1024 * 1024
    recorded = {fp for _, fp in recorded_fingerprints(model_dir(TRAINED))}
    assert recorded == {read_record()["weights_fingerprint"]}  # record.json and the export agree
    assert KeywordSpotter.from_model(TRAINED, backend="tf").fingerprint in recorded


def test_an_unknown_backend_is_named(monkeypatch):
    with pytest.raises(ConfigError, match="backend='onnx'"):
        resolve_backend("onnx")
    monkeypatch.setenv(BACKEND_ENV, "gpu")
    with pytest.raises(ConfigError, match=r"\$KWS_PROTO_BACKEND='gpu'"):
        resolve_backend()
    monkeypatch.setenv(BACKEND_ENV, "tf")
    assert resolve_backend() == "tf"


def test_classify_reports_each_unreadable_file_and_classifies_the_rest(
        keyword_spotter, keyword_clips, corrupt, tmp_path, capsys):
    cut, junk = corrupt
    support = list(keyword_clips["keywords"].values())[0]
    bank = keyword_spotter.new_bank()
    keyword_spotter.enroll(bank, "kw", support[:5])
    path = save_bank(bank, tmp_path / "b.npz")
    good = [str(support[5]), str(support[6])]
    files = [good[0], str(cut), str(tmp_path / "missing.wav"), str(junk), good[1]]
    results = keyword_spotter.classify(bank, files, skip_unreadable=True)
    assert [type(r).__name__ for r in results] == ["Classification", "Unreadable", "Unreadable",
                                                   "Unreadable", "Classification"]
    with pytest.raises(AudioError, match="cut.flac"):
        keyword_spotter.classify(bank, files)

    capsys.readouterr()
    assert main(["classify", str(path), *files]) == 1
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith(f"{good[0]}: kw") and lines[4].startswith(good[1])
    assert lines[1].startswith(f"{cut}: error: ") and "corrupt" in lines[1]
    assert lines[2] == f"{tmp_path / 'missing.wav'}: error: no such file"
    assert lines[3].startswith(f"{junk}: error: ")
    assert "3 of 5 file(s) could not be read" in err

    assert main(["classify", str(path), *files, "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == files
    assert [("error" in r) for r in rows] == [False, True, True, True, False]
    assert rows[0]["keyword"] == results[0].keyword and "error" not in rows[0]
    assert isinstance(results[1], Unreadable) and rows[1]["error"] == results[1].error


def test_enroll_refuses_a_keyword_with_an_unreadable_clip(trained_run, keyword_clips, corrupt,
                                                          tmp_path, capsys):
    cut, junk = corrupt
    support = list(keyword_clips["keywords"].values())[0]
    bank = tmp_path / "b.npz"
    assert main(["enroll", str(trained_run), "--bank", str(bank), "--keyword", "bad",
                 *map(str, support[:3]), str(cut), str(junk)]) == 2
    err = capsys.readouterr().err
    assert "'bad': 2 of 5 clip(s) cannot be read" in err and str(cut) in err and str(junk) in err
    assert not bank.exists()  # nothing written
    assert main(["enroll", str(trained_run), "--bank", str(bank), "--keyword", "ok",
                 *map(str, support[:3])]) == 0
    before = bank.read_bytes()
    assert main(["enroll", "--bank", str(bank), "--keyword", "ok2", *map(str, support[3:6]),
                 "--negatives", str(cut)]) == 2
    assert "negatives: 1 of 1 clip(s) cannot be read" in capsys.readouterr().err
    assert bank.read_bytes() == before and load_bank(bank).names == ["ok"]


def test_numpy_distances_match_the_tensorflow_twin():
    from kws_proto.model.protonet import squared_distances as tf_distances
    from kws_proto.util.vectors import squared_distances

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 192)).astype(np.float32), rng.standard_normal((3, 192)).astype(np.float32)
    a, b = a + 5, b + 5  # far from the origin, where the expansion needs the centring
    d = squared_distances(a, b)
    np.testing.assert_allclose(d, tf_distances(a, b).numpy(), rtol=1e-4)
    np.testing.assert_allclose(d, ((a[:, None].astype(np.float64) - b[None]) ** 2).sum(-1), rtol=1e-9)
