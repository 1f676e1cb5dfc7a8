"""The Google speech embedding (kws_proto.model.gse) on real clips, and `kws-proto eval gse`.

Everything but the missing-extra message needs the optional extra: `pip install -e '.[gse]'`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kws_proto.errors import ConfigError
from kws_proto.model.gse import GSEUnavailableError
from kws_proto.spot.lite import litert_available

from conftest import SHARED_DATA, assert_close_to_scale, fixture_clip_paths, gse_installed, needs_gse

needs_litert = pytest.mark.skipif(not litert_available(), reason="ai-edge-litert is not installed "
                                  "(pip install -e '.[lite]'; the dev extra brings it)")

DATA = Path(__file__).parent / "data"




@pytest.mark.skipif(gse_installed(), reason="the 'gse' extra is installed: its absence cannot be seen")
def test_missing_extra_names_the_install_command():
    from kws_proto.model.gse import gse_embed_clips

    with pytest.raises(GSEUnavailableError, match=r"pip install -e '\.\[gse\]'"):
        gse_embed_clips(np.zeros((1, 16000), np.float32))


@needs_gse
def test_model_files_come_from_the_installed_wheel():
    from kws_proto.model.gse import model_info

    info = model_info()
    assert info["distribution"] == "pyopen-wakeword" and info["license"] == "Apache-2.0"
    assert set(info["sha256"]) == {"melspectrogram.tflite", "embedding_model.tflite"}
    assert Path(info["model_dir"]).is_dir()


@needs_gse
def test_real_clips_embed_finite_96d_and_deterministic(real_clips):
    from kws_proto.model.gse import SpeechEmbedding, gse_embed_clips

    emb = gse_embed_clips(real_clips)
    assert emb.shape == (len(real_clips), 96) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    np.testing.assert_array_equal(emb, gse_embed_clips(real_clips))  # same process, same model
    np.testing.assert_array_equal(emb, SpeechEmbedding().embed_clips(real_clips))  # a new one
    # one clip at a time gives the same rows (the mel floor is per clip, never per batch)
    np.testing.assert_array_equal(emb, np.concatenate([gse_embed_clips(c[None]) for c in real_clips]))
    # different words embed apart
    d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    assert d[np.triu_indices(len(emb), 1)].min() > 10


@needs_gse
@needs_litert
def test_litert_and_tensorflow_interpreters_embed_alike(real_clips):
    """The two files in LiteRT and in tf.lite.Interpreter: the same log-mels and the same 96-d
    window embeddings, to float32 rounding of their scale, on 1 s crops and whole recordings."""
    from kws_proto.audio.loading import read_audio
    from kws_proto.model.gse import SpeechEmbedding, gse_embed_clips, to_pcm16

    models = {b: SpeechEmbedding(backend=b) for b in ("tf", "lite")}
    assert {b: m.backend for b, m in models.items()} == {"tf": "tf", "lite": "lite"}
    pcm = to_pcm16(real_clips)
    assert_close_to_scale(models["lite"].melspectrogram(pcm), models["tf"].melspectrogram(pcm))
    ref = models["tf"].window_embeddings(real_clips)  # [6, 3, 96]
    assert_close_to_scale(models["lite"].window_embeddings(real_clips), ref)
    assert_close_to_scale(gse_embed_clips(real_clips, backend="lite"), ref.max(axis=1))
    for path in fixture_clip_paths():  # every window of the whole recording (1 to 11 of them)
        y = read_audio(path, 16000)[None]
        want = models["tf"].window_embeddings(y)
        assert_close_to_scale(models["lite"].window_embeddings(y), want, err_msg=path.name)


def test_an_unknown_interpreter_is_named():
    from kws_proto.model.gse import interpreter_class

    with pytest.raises(ConfigError, match="backend='onnx'"):
        interpreter_class("onnx")


@needs_gse
def test_the_spotter_picks_the_interpreter_as_for_a_trained_run(monkeypatch):
    """``backend=``, else ``$KWS_PROTO_BACKEND``, else LiteRT when installed; one fingerprint."""
    from kws_proto.spot.backends import BACKEND_ENV
    from kws_proto.spot.gse import GSEEmbedder

    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert GSEEmbedder().interpreter == ("lite" if litert_available() else "tf")
    assert GSEEmbedder("lite").interpreter == "lite"
    monkeypatch.setenv(BACKEND_ENV, "tf")
    chosen = GSEEmbedder()
    assert chosen.interpreter == "tf" and chosen.backend == "gse"
    assert chosen.fingerprint == GSEEmbedder("lite").fingerprint  # banks are interchangeable
    monkeypatch.setenv(BACKEND_ENV, "gpu")
    with pytest.raises(ConfigError, match=r"\$KWS_PROTO_BACKEND='gpu'"):
        GSEEmbedder()


@needs_gse
def test_one_second_gives_three_windows_and_max_pools_them(real_clips):
    from kws_proto.model.gse import gse_embed_clips, n_windows, shared_model

    windows = shared_model().window_embeddings(real_clips)
    assert windows.shape == (len(real_clips), 3, 96) and n_windows(16000) == 3
    np.testing.assert_array_equal(gse_embed_clips(real_clips), windows.max(axis=1))


@needs_gse
def test_short_clip_is_padded_to_one_window():
    from kws_proto.audio.loading import read_audio
    from kws_proto.model.gse import MIN_SAMPLES, gse_embed_clips, n_windows, pad_to_window

    y = read_audio(DATA / "fsdd" / "5_nicolas_0.wav", 16000)  # 0.34 s
    assert len(y) < MIN_SAMPLES and n_windows(len(y)) == 1
    padded = pad_to_window(y[None])
    assert padded.shape == (1, MIN_SAMPLES)
    emb = gse_embed_clips(y[None])
    assert emb.shape == (1, 96) and np.isfinite(emb).all()
    np.testing.assert_array_equal(emb, gse_embed_clips(padded))


@needs_gse
def test_20db_quieter_clip_embeds_close_but_not_equal(real_clips):
    """Measured on these six clips: the log-mel shifts by a constant (2.00 after ``x / 10 + 2``,
    1st-99th percentile 1.83-2.11) and the embedding moves by 4-10% of its norm (cosine 0.995 or
    more), 5-16% of the distance to the nearest other word: level-sensitive, but far less than
    the distance between words."""
    from kws_proto.model.gse import gse_embed_clips

    loud = gse_embed_clips(real_clips)
    quiet = gse_embed_clips(real_clips * np.float32(0.1))  # -20 dB
    moved = np.linalg.norm(loud - quiet, axis=1)
    apart = np.linalg.norm(loud[:, None] - loud[None], axis=-1)
    np.fill_diagonal(apart, np.inf)
    assert (moved > 0.01 * np.linalg.norm(loud, axis=1)).all()  # not level-invariant
    assert (moved < 0.5 * apart.min(axis=1)).all()  # much closer to itself than to any other word
    # every quieter clip's nearest loud clip is itself
    cross = np.linalg.norm(quiet[:, None] - loud[None], axis=-1)
    np.testing.assert_array_equal(cross.argmin(axis=1), np.arange(len(loud)))



@needs_gse
@pytest.mark.parametrize("model", ["gse", "gse-full"])
def test_eval_gse_runs_on_a_tiny_folder(tiny_folder, model, capsys):
    from kws_proto.cli import main

    argv = ["eval", model, "--data", str(tiny_folder), "--way", "3", "--shot", "1",
            "--query", "2", "--episodes", "20", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["n_way"], r["k_shot"], r["episodes"]) for r in rows] == [(3, 1, 20)]
    assert 0.0 <= rows[0]["mean"] <= 1.0 and rows[0]["ci95"] >= 0.0
    if model == "gse":  # the table is cached beside the feature caches and reused
        cached = list((tiny_folder / ".cache").glob("gse-*.npy"))
        assert len(cached) == 1
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out) == rows


@needs_gse
def test_gse_scores_the_episodes_the_encoders_see(tiny_folder):
    """The same seed, data and classes draw the same episodes as `eval default` does."""
    from kws_proto.data.experiment import open_data
    from kws_proto.eval.evaluate import EvalSetting, eval_episodes
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.eval.gse import open_source

    s = EvalSetting(3, 1, 2, 10)
    classes = ("computer", "jarvis", "1", "5", "7", "9")
    ours = eval_episodes(open_source(tiny_folder, True), classes, s, seed=3)
    theirs = eval_episodes(open_data(tiny_folder, FeatureConfig(), None, True, progress=False),
                           classes, s, seed=3)
    for a, b in zip(ours, theirs, strict=True):
        assert a.classes == b.classes
        np.testing.assert_array_equal(a.support, b.support)
        np.testing.assert_array_equal(a.query, b.query)


@needs_gse
def test_few_rows_are_embedded_alone_and_many_build_the_cache(tiny_folder):
    """A fused model scoring a few clips of a large corpus embeds those clips only: rows below
    half the manifest are computed (equal to the cached table's rows), others stay zero, nothing
    is written, and rows in the caller's memo are not computed again; half or more build the
    whole cache, which later calls read."""
    from kws_proto.data.dataset import load_manifest
    from kws_proto.eval.frozen import frozen_table

    manifest = load_manifest(tiny_folder)
    n = len(manifest)  # 18
    cache = tiny_folder / ".cache"
    memo: dict = {}
    few = frozen_table("gse", manifest, progress=False, rows=[3, 0, 3, 7], memo=memo)
    assert not list(cache.glob("gse-*")) and sorted(memo) == [0, 3, 7]
    assert few.shape == (n, 96) and not few[[1, 2, 4, 5, 6]].any()
    memo[7] = np.full(96, 5.0, np.float32)  # a row in the memo is taken from it, not recomputed
    again = frozen_table("gse", manifest, progress=False, rows=[0, 7], memo=memo)
    np.testing.assert_array_equal(again[7], 5.0)
    np.testing.assert_array_equal(again[0], few[0])
    full = frozen_table("gse", manifest, progress=False, rows=range(n // 2), memo={})
    assert len(list(cache.glob("gse-*.npy"))) == 1 and full[n - 1].any()  # the whole table
    assert_close_to_scale(few[[0, 3]], full[[0, 3]])
    later = frozen_table("gse", manifest, progress=False, rows=[1], memo={})
    np.testing.assert_array_equal(later, full)  # read from the cache now


@needs_gse
def test_eval_gse_without_data_says_so(capsys):
    from kws_proto.errors import ConfigError
    from kws_proto.eval.evaluate import evaluate_run, grid

    with pytest.raises(ConfigError, match="--data"):
        evaluate_run("gse", grid([2], [1], 1, 1))


def test_the_spotter_enrols_and_classifies_with_the_speech_embedding(tmp_path):
    """`KeywordSpotter.from_model("gse")`: the frozen peer through the package's own decision rule
    (real clips of two FSDD digits: each classified as its own digit)."""
    pytest.importorskip("pyopen_wakeword", reason="the 'gse' extra is not installed: "
                        "pip install -e '.[gse]'")
    from kws_proto.spot.bank import load_bank, save_bank
    from kws_proto.spot.spotter import KeywordSpotter

    fsdd = SHARED_DATA / "fsdd"
    if not fsdd.is_dir():
        pytest.skip(f"real speech not available: {fsdd} is absent (set KWS_SHARED_DATA)")
    spotter = KeywordSpotter.from_model("gse")
    assert spotter.embedding_dim == 96 and spotter.backend == "gse"
    bank = spotter.new_bank()
    for digit in ("0", "1"):
        spotter.enroll(bank, digit, [fsdd / f"{digit}_jackson_{i}.wav" for i in range(5)])
    path = save_bank(bank, tmp_path / "gse.bank.npz")
    again = KeywordSpotter.for_bank(load_bank(path))  # the bank names its encoder: gse
    results = again.classify(load_bank(path), [fsdd / f"{d}_jackson_{i}.wav"
                                               for d in ("0", "1") for i in range(10, 14)])
    assert [r.nearest for r in results] == ["0"] * 4 + ["1"] * 4
