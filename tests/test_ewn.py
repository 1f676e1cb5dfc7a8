"""EfficientWord-Net's embedding (kws_proto.model.ewn) on real clips, `kws-proto eval ewn`, the
spotter's `ewn` and a three-member fusion.

Everything but the missing-wheel message needs the wheel and ONNX Runtime (`make ewn`; `make test`
installs them); the speaker test also the shared real speech.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kws_proto.audio.loading import crop_start, load_audio
from kws_proto.model.ewn import WINDOW, EWNUnavailableError, model_file
from kws_proto.model.pretrained import TRAINED

from conftest import SHARED_DATA, fixture_clip_paths, needs_gse


def _installed() -> bool:
    try:
        model_file()
        import onnxruntime  # noqa: F401
    except (EWNUnavailableError, ImportError):
        return False
    return True


needs_ewn = pytest.mark.skipif(not _installed(), reason="EfficientWord-Net is not installed: make ewn "
                               "(pip install -e '.[ewn]' && pip install --no-deps efficientword-net==1.0.5)")

DATA = Path(__file__).parent / "data"




def test_missing_wheel_names_the_install_command():
    with pytest.raises(EWNUnavailableError, match=r"make ewn.*--no-deps efficientword-net==1\.0\.5"):
        model_file("kws_no_such_package_for_ewn")


@needs_ewn
def test_model_comes_from_the_installed_wheel():
    from kws_proto.model.ewn import model_info

    info = model_info()
    assert (info["distribution"], info["version"], info["license"]) == (
        "efficientword-net", "1.0.5", "Apache-2.0")
    assert Path(info["model_file"]).name == "slim_93%_accuracy_72.7390%.onnx"
    assert len(info["sha256"]) == 64 and info["sha256"] == model_info()["sha256"]


@needs_ewn
def test_real_clips_embed_unit_2048d_and_deterministic(real_clips):
    from kws_proto.model.ewn import ewn_embed_clips

    emb = ewn_embed_clips(real_clips)
    assert emb.shape == (6, 2048) and emb.dtype == np.float32 and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(emb, ewn_embed_clips(real_clips))
    np.testing.assert_array_equal(emb[2:3], ewn_embed_clips(real_clips[2:3]))
    assert ewn_embed_clips(np.zeros((0, 16000), np.float32)).shape == (0, 2048)
    cos = emb @ emb.T
    assert (cos[~np.eye(6, dtype=bool)] < 0.9).all()  # six different words stay apart


def test_short_clips_are_centred_and_long_ones_keep_their_loudest_window(real_clips):
    from kws_proto.model.ewn import to_window

    short = to_window(real_clips[:2])  # 1 s -> 1.5 s: 4,000 zeros each side
    assert short.shape == (2, WINDOW)
    np.testing.assert_array_equal(short[:, 4000:20000], real_clips[:2])
    assert not short[:, :4000].any() and not short[:, 20000:].any()
    odd = to_window(real_clips[:1, :15999])
    np.testing.assert_array_equal(odd[0, 4000:19999], real_clips[0, :15999])  # the odd zero after
    # a word at 2.2 s of 4 s of faint noise: its window is found wherever it is, every time
    noise = np.random.default_rng(0).normal(0, 1e-3, 64000).astype(np.float32)
    long = noise.copy()
    long[35200:51200] += real_clips[0]
    cut = to_window(long[None])
    start = crop_start(long, WINDOW, "loudest")
    np.testing.assert_array_equal(cut, long[None, start:start + WINDOW])  # one span of the clip
    assert start <= 35200 and start + WINDOW >= 51200  # the whole word is inside
    np.testing.assert_array_equal(cut, to_window(long[None]))
    with pytest.raises(ValueError, match=r"\[n, samples\]"):
        to_window(long)


@needs_ewn
def test_padding_is_what_is_embedded(real_clips):
    from kws_proto.model.ewn import ewn_embed_clips, to_window

    np.testing.assert_array_equal(ewn_embed_clips(real_clips[:2]),
                                  ewn_embed_clips(to_window(real_clips[:2])))


@needs_ewn
def test_same_word_of_two_speakers_is_closer_than_two_words():
    """FSDD digits 0-4 of three speakers: on these 15 clips the mean cosine of one digit across
    speakers was 0.32, of two digits 0.08."""
    from kws_proto.model.ewn import ewn_embed_clips

    fsdd = SHARED_DATA / "fsdd"
    if not fsdd.is_dir():
        pytest.skip(f"real speech not available: {fsdd} is absent (set KWS_SHARED_DATA)")
    speakers, digits = ("jackson", "nicolas", "theo"), "01234"
    clips = np.stack([load_audio(fsdd / f"{d}_{s}_0.wav", 16000, 1.0, "loudest")
                      for d in digits for s in speakers])
    e = ewn_embed_clips(clips)
    cos = e @ e.T  # [15, 15]
    word, spk = np.repeat(np.arange(5), 3), np.tile(np.arange(3), 5)
    same = (word[:, None] == word[None]) & (spk[:, None] != spk[None])
    other = word[:, None] != word[None]
    assert cos[same].mean() > cos[other].mean() + 0.1



@needs_ewn
def test_eval_ewn_on_a_tiny_folder_scores_the_cached_embeddings(tiny_folder, capsys):
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.cli import main
    from kws_proto.data.cache import load_clip
    from kws_proto.data.dataset import load_manifest
    from kws_proto.eval.frozen import frozen_table
    from kws_proto.model.ewn import ewn_embed_clips

    argv = ["eval", "ewn", "--data", str(tiny_folder), "--way", "3", "--shot", "1",
            "--query", "2", "--episodes", "20", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["n_way"], r["k_shot"], r["episodes"]) for r in rows] == [(3, 1, 20)]
    assert 0.5 <= rows[0]["mean"] <= 1.0  # takes of one recording: far above chance (1/3)
    assert len(list((tiny_folder / ".cache").glob("ewn-*.npy"))) == 1
    assert main(argv) == 0 and json.loads(capsys.readouterr().out) == rows  # from the cache
    manifest = load_manifest(tiny_folder)
    table = frozen_table("ewn", manifest, progress=False)
    direct = ewn_embed_clips(np.stack([load_clip(manifest, i, FeatureConfig()) for i in (0, 7)]))
    np.testing.assert_array_equal(table[[0, 7]], direct)
    longer = frozen_table("ewn-1.5s", manifest, progress=False)  # another cut, another cache
    assert longer.shape == table.shape and len(list((tiny_folder / ".cache").glob("ewn-*.npy"))) == 2


@needs_ewn
def test_eval_ewn_without_data_says_so():
    from kws_proto.errors import ConfigError
    from kws_proto.eval.evaluate import evaluate_run, grid

    with pytest.raises(ConfigError, match="--data"):
        evaluate_run("ewn", grid([2], [1], 1, 1))


@needs_ewn
def test_the_spotter_enrols_and_classifies_with_ewn(tiny_folder, tmp_path):
    from kws_proto.spot.bank import load_bank, save_bank
    from kws_proto.spot.spotter import KeywordSpotter

    spotter = KeywordSpotter.from_model("ewn")
    assert (spotter.embedding_dim, spotter.backend, spotter.spec) == (2048, "ewn", "ewn")
    words = sorted(p.name for p in tiny_folder.iterdir() if p.is_dir() and p.name != ".cache")
    bank = spotter.new_bank()
    for w in words:
        spotter.enroll(bank, w, [tiny_folder / w / "a.wav", tiny_folder / w / "b.wav"])
    path = save_bank(bank, tmp_path / "ewn.bank.npz")
    again = KeywordSpotter.for_bank(load_bank(path))  # the bank names its encoder: ewn
    assert again.fingerprint == spotter.fingerprint
    results = again.classify(load_bank(path), [tiny_folder / w / "c.wav" for w in words])
    assert [r.nearest for r in results] == words


@needs_ewn
@needs_gse
def test_three_member_fusion_round_trip(tiny_folder, capsys):
    from kws_proto.cli import main
    from kws_proto.model.fusion import load_fusion
    from kws_proto.spot.fusion import fuse_models
    from kws_proto.spot.spotter import KeywordSpotter

    out = tiny_folder.parent / "fused3"
    made = fuse_models([TRAINED, "gse", "ewn"], DATA, out, weights=[1, 1, 0.5], clips=4,
                       progress=False)
    fusion = load_fusion(out)
    assert [m.model for m in fusion.members] == [TRAINED, "gse", "ewn"]
    assert [m.dim for m in fusion.members][1:] == [96, 2048] and fusion.fingerprint == made.fingerprint
    spotter = KeywordSpotter.from_model(out)
    assert spotter.embedding_dim == fusion.dim and spotter.fingerprint == fusion.fingerprint
    clips = np.stack([load_audio(p, 16000, 1.0, "loudest") for p in fixture_clip_paths()[:2]])
    parts = [e(clips) for e in spotter.embedder.embedders]
    np.testing.assert_allclose(spotter.embedder(clips), fusion.fuse(parts), rtol=1e-5, atol=1e-6)
    fused = fusion.fuse(parts)
    np.testing.assert_allclose(np.linalg.norm(fused[:, -2048:], axis=1), np.sqrt(0.5), rtol=1e-5)
    argv = ["eval", str(out), "--data", str(tiny_folder), "--way", "3", "--shot", "1",
            "--query", "2", "--episodes", "10", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["episodes"] == 10 and 0.5 <= rows[0]["mean"] <= 1.0
