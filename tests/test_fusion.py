"""The fused model (kws_proto.model.fusion, spot/fusion.py, eval/fusion.py): its math, its folder,
its fingerprint, and the spotter and `eval` on it.

The math and the folder need nothing; everything that embeds needs the optional extra `gse`
(`pip install -e '.[gse]'`), and the eval and streaming tests the shared real speech.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kws_proto.audio.loading import load_audio
from kws_proto.errors import BankError, CheckpointError, ConfigError
from kws_proto.model.fusion import Fusion, Member, centred_unit, is_fusion, load_fusion, save_fusion
from kws_proto.model.pretrained import TRAINED

from kws_proto.spot.lite import litert_available

from conftest import REPO, needs_gse

needs_litert = pytest.mark.skipif(not litert_available(), reason="ai-edge-litert is not installed "
                                  "(pip install -e '.[lite]'; the dev extra brings it)")

TEST_DATA = REPO / "tests" / "data"
WEIGHTS = (1.0, 2.0)


def _fusion(weights=(1.0, 1.0), shift=0.0) -> Fusion:
    rng = np.random.default_rng(0)
    return Fusion((Member("a", "fa", weights[0], rng.normal(size=3).astype(np.float32) + shift),
                   Member("b", "fb", weights[1], rng.normal(size=2).astype(np.float32))),
                  {"path": "/corpus", "clips": 10, "seed": 0})


def test_squared_distance_is_the_weighted_sum_of_the_members():
    f = _fusion((0.5, 3.0))
    rng = np.random.default_rng(1)
    e1, e2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    fused = f.fuse([e1, e2])
    assert fused.shape == (4, 5) and fused.dtype == np.float32
    u1, u2 = centred_unit(e1, f.members[0].centre), centred_unit(e2, f.members[1].centre)
    np.testing.assert_allclose(np.linalg.norm(u1, axis=1), 1, rtol=1e-6)
    d = ((fused[:, None] - fused[None]) ** 2).sum(-1)  # [4, 4]
    parts = [((u[:, None] - u[None]) ** 2).sum(-1) for u in (u1, u2)]
    np.testing.assert_allclose(d, 0.5 * parts[0] + 3.0 * parts[1], rtol=1e-5, atol=1e-6)


def test_weights_decide_which_member_the_ranking_follows():
    # member a puts the query beside prototype 0, member b beside prototype 1
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.9, 0.1, 0.0]])  # proto 0, proto 1, query
    b = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 0.9]])

    def nearest(weights):
        f = Fusion((Member("a", "fa", weights[0], np.zeros(3, np.float32)),
                    Member("b", "fb", weights[1], np.zeros(2, np.float32))))
        e = f.fuse([a, b])
        return int(((e[:2] - e[2]) ** 2).sum(-1).argmin())

    assert nearest((4, 1)) == 0 and nearest((1, 4)) == 1 and nearest((0, 1)) == 1


def test_folder_round_trip_and_fingerprint(tmp_path):
    f = _fusion(WEIGHTS)
    save_fusion(f, tmp_path / "fused")
    assert is_fusion(tmp_path / "fused") and not is_fusion(tmp_path)
    g = load_fusion(tmp_path / "fused")
    assert g.fingerprint == f.fingerprint and g.centre_data == f.centre_data
    for m, n in zip(f.members, g.members):
        assert (m.model, m.fingerprint, m.weight) == (n.model, n.fingerprint, n.weight)
        np.testing.assert_array_equal(m.centre, n.centre)  # float32 survives the JSON exactly
    # weights, centres and the members' own fingerprints each change it
    assert _fusion((1.0, 2.5)).fingerprint != f.fingerprint
    assert _fusion(WEIGHTS, shift=1e-3).fingerprint != f.fingerprint
    other = Fusion((replace(f.members[0], fingerprint="fz"), f.members[1]))
    assert other.fingerprint != f.fingerprint


def test_bad_weights_and_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not all 0"):
        _fusion((0.0, 0.0))
    with pytest.raises(ConfigError, match=">= 0"):
        _fusion((-1.0, 1.0))
    (tmp_path / "fusion.json").write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError, match="not a kws_proto.fusion file"):
        load_fusion(tmp_path)


# -- with the members ---------------------------------------------------------------------
def _clips() -> list[Path]:
    return sorted(p for p in TEST_DATA.rglob("*") if p.suffix in (".wav", ".flac"))


@pytest.fixture(scope="module")
def fused_dir(tmp_path_factory) -> Path:
    from kws_proto.spot.fusion import fuse_models

    out = tmp_path_factory.mktemp("fusion") / "fused"
    fuse_models([TRAINED, "gse"], TEST_DATA, out, weights=WEIGHTS, clips=4, seed=0,
                progress=False)
    return out


@pytest.fixture(scope="module")
def fused_spotter(fused_dir):
    from kws_proto.spot.spotter import KeywordSpotter

    return KeywordSpotter.from_model(fused_dir)


@needs_gse
def test_fused_embedding_is_the_hand_made_concatenation(fused_dir, fused_spotter):
    from kws_proto.model.gse import gse_embed_clips
    from kws_proto.spot.backends import open_embedder
    from kws_proto.spot.fusion import centre_files
    from kws_proto.model.pretrained import model_dir

    fusion = load_fusion(fused_dir)
    assert [m.model for m in fusion.members] == [TRAINED, "gse"]
    assert fusion.centre_data["clips"] == 4 and fusion.centre_data["path"] == str(TEST_DATA)
    trained = open_embedder(model_dir(TRAINED))  # the spotter's own backend for the trained member
    interpreter = fused_spotter.embedder.embedders[1].interpreter  # and its GSE interpreter
    members = [trained, lambda audio: gse_embed_clips(audio, backend=interpreter)]
    centre_audio = np.stack([load_audio(p, 16000, 1.0, "loudest") for p in centre_files(TEST_DATA, 4, 0)])
    for m, embed in zip(fusion.members, members):  # a centre is the mean embedding of the corpus
        np.testing.assert_allclose(m.centre, embed(centre_audio).mean(0), rtol=1e-5, atol=1e-5)
    audio = np.stack([load_audio(p, 16000, 1.0, "loudest") for p in _clips()])
    hand = np.concatenate([np.sqrt(w) * (e - c) / np.linalg.norm(e - c, axis=1, keepdims=True)
                           for w, c, e in zip(WEIGHTS, (m.centre for m in fusion.members),
                                              (embed(audio) for embed in members))], axis=1)
    got = fused_spotter.embed(audio)
    assert got.shape == (len(audio), 192 + 96) == (len(audio), fused_spotter.embedding_dim)
    np.testing.assert_allclose(got, hand, rtol=1e-5, atol=1e-6)
    # squared distances: the weighted sum of the members' centred-unit ones
    d = ((got[:, None] - got[None]) ** 2).sum(-1)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1) ** 2, sum(WEIGHTS), rtol=1e-5)
    assert d[np.triu_indices(len(got), 1)].min() > 0.05  # different words embed apart


@needs_gse
@needs_litert
def test_both_backends_embed_alike_and_share_one_fingerprint(fused_dir, fused_spotter):
    """Every member on TensorFlow or on LiteRT: one fingerprint (banks interchangeable) and the
    same fused embeddings to the export's tolerance."""
    from kws_proto.spot.export import PARITY_TOLERANCE
    from kws_proto.spot.spotter import KeywordSpotter

    spotters = {b: KeywordSpotter.from_model(fused_dir, backend=b) for b in ("tf", "lite")}
    assert {b: s.backend for b, s in spotters.items()} == {"tf": "tf+gse", "lite": "lite+gse"}
    assert [e.interpreter for e in (s.embedder.embedders[1] for s in spotters.values())] == ["tf", "lite"]
    assert spotters["tf"].fingerprint == spotters["lite"].fingerprint == fused_spotter.fingerprint
    audio = np.stack([load_audio(p, 16000, 1.0, "loudest") for p in _clips()])
    ref = spotters["tf"].embed(audio)
    err = np.abs(spotters["lite"].embed(audio) - ref).max() / np.abs(ref).max()
    assert err <= PARITY_TOLERANCE, err


@needs_gse
def test_bank_of_another_fusion_is_refused(fused_dir, fused_spotter, tmp_path):
    from kws_proto.spot.spotter import KeywordSpotter

    bank = fused_spotter.new_bank()
    fsdd = sorted((TEST_DATA / "fsdd").glob("*.wav"))
    fused_spotter.enroll(bank, "digit", fsdd[:2])
    assert fused_spotter.classify(bank, fsdd[:1])[0].nearest == "digit"
    assert KeywordSpotter.for_bank(bank).fingerprint == fused_spotter.fingerprint  # found again
    fusion = load_fusion(fused_dir)
    other = Fusion((replace(fusion.members[0], weight=3.0), fusion.members[1]), fusion.centre_data)
    save_fusion(other, tmp_path / "other")
    with pytest.raises(BankError, match="another encoder"):
        KeywordSpotter.from_model(tmp_path / "other").check_bank(bank)
    stale = Fusion((replace(fusion.members[0], fingerprint="0" * 64), fusion.members[1]))
    save_fusion(stale, tmp_path / "stale")
    with pytest.raises(CheckpointError, match="fuse"):
        KeywordSpotter.from_model(tmp_path / "stale")


@needs_gse
def test_streaming_gives_the_offline_events(fused_spotter, picovoice_dir):
    from kws_proto.audio.loading import read_audio
    from kws_proto.spot.streaming import StreamingSpotter, detect_chunks

    bank = fused_spotter.new_bank()
    fused_spotter.enroll(bank, "computer", sorted((picovoice_dir / "computer").glob("*.flac"))[:3])
    y = read_audio(picovoice_dir / "multiple_keywords.flac", 16000)[14 * 16000:22 * 16000]
    offline = fused_spotter.detect(bank, y)
    assert offline.events, "the 8 s around 17 s should hold 'computer'"
    chunks = [y[i:i + 5000] for i in range(0, len(y), 5000)]
    streamed = detect_chunks(StreamingSpotter(fused_spotter, bank), chunks)
    assert [(e.keyword, round(e.start, 6), round(e.end, 6)) for e in streamed.events] == \
        [(e.keyword, round(e.start, 6), round(e.end, 6)) for e in offline.events]
    assert streamed.windows == offline.windows


@needs_gse
def test_eval_scores_the_members_episodes(fused_dir, fsdd_dir, tmp_path):
    from kws_proto.eval.compare import _fused_scores
    from kws_proto.eval.evaluate import eval_episodes, evaluate_run, grid
    from kws_proto.eval.fusion import member_tables
    from kws_proto.model.scoring import score_episodes

    tiny = tmp_path / "tiny"  # 3 digits x 2 speakers x 4 takes of FSDD
    tiny.mkdir()
    for f in sorted(fsdd_dir.glob("[012]_[jt]*_[0-3].wav")):
        (tiny / f.name).symlink_to(f)
    settings = grid([2], [1], n_query=3, episodes=5)
    rows = evaluate_run(fused_dir, settings, data_dir=tiny, seed=3, speaker_disjoint=True,
                        progress=False)
    fusion = load_fusion(fused_dir)
    parts = [member_tables(m.model, m.fingerprint, _dataset(tiny), True, False)
             for m in fusion.members]
    data = parts[0][0]
    episodes = eval_episodes(data, data.splits.test, settings[0], seed=3)
    for d, _ in parts[1:]:  # every member draws the same episodes from its manifest
        other = eval_episodes(d, data.splits.test, settings[0], seed=3)
        assert all((e.support == o.support).all() and (e.query == o.query).all()
                   for e, o in zip(episodes, other))
    table = fusion.fuse([t(episodes) for _, t in parts])
    assert rows[0]["accuracies"] == score_episodes(table, episodes).accuracies.tolist()
    # `kws-proto compare --fused` scores it alike on the compared runs' episodes
    scored = _fused_scores(fused_dir, data, {(2, 1): episodes}, progress=False)
    assert scored.accuracies[(2, 1)].tolist() == rows[0]["accuracies"]
    assert scored.info["embedding_dim"] == 288 and scored.info["ms_per_clip"] > 0


def _dataset(folder: Path) -> Path:
    from data_prep.adhoc import as_dataset

    return as_dataset(folder)
