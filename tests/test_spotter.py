"""KeywordSpotter and the enroll / bank / classify commands on a trained encoder and real audio."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from kws_proto.audio.loading import read_audio
from kws_proto.cli import main
from kws_proto.errors import AudioError, BankError, ConfigError
from kws_proto.spot.bank import load_bank, save_bank
from kws_proto.spot.decision import calibrate_threshold, decide, keyword_distances, prototype
from kws_proto.spot.detect import Event, match_events
from kws_proto.spot.enrolment import ENROL_SHIFTS_MS
from kws_proto.spot.spotter import KeywordSpotter

N_SUPPORT = 5


@pytest.fixture(scope="module")
def enrolled(keyword_spotter, keyword_clips):
    """A bank of three keywords, five support clips each, and the held-back clips."""
    bank = keyword_spotter.new_bank()
    held = {}
    for name, paths in keyword_clips["keywords"].items():
        keyword_spotter.enroll(bank, name, paths[:N_SUPPORT])
        held[name] = paths[N_SUPPORT:]
    return bank, held


def _own_and_unknown_distances(spotter, bank, held, unknown):
    """Distances of each keyword's held-back clips to its own prototype, and of the unenrolled
    word's clips to their nearest prototype."""
    own = np.concatenate([keyword_distances(bank, spotter.embed_files(paths))[:, j]
                          for j, paths in enumerate(held.values())])
    other = keyword_distances(bank, spotter.embed_files(unknown)).min(axis=1)
    return own, other


def test_held_back_clips_are_their_keyword_and_an_unenrolled_word_lies_farther(
        keyword_spotter, enrolled, keyword_clips, trained_run_kind, record_property):
    bank, held = enrolled
    files = [p for paths in held.values() for p in paths]
    truth = [name for name, paths in held.items() for _ in paths]
    results = keyword_spotter.classify(bank, files)
    nearest = float(np.mean([r.nearest == t for r, t in zip(results, truth)]))
    accepted = float(np.mean([r.keyword == t for r, t in zip(results, truth)]))
    rejected = float(np.mean([r.keyword == "unknown"
                              for r in keyword_spotter.classify(bank, keyword_clips["unknown"])]))
    own, other = _own_and_unknown_distances(keyword_spotter, bank, held, keyword_clips["unknown"])
    record_property("spotting", {"source": keyword_clips["source"], "encoder": trained_run_kind,
                                 "nearest": nearest, "accepted_correct": accepted,
                                 "unknown_rejected": rejected})
    # another word (other voices) lies farther from the prototypes than the keyword's own clips
    assert np.median(other) > np.median(own)
    if trained_run_kind == "smoke":  # 40 episodes on a tiny synthetic corpus: 3 keywords, chance 1/3
        assert nearest >= 0.5
        return
    assert nearest >= 0.8 and accepted > 0.5 and rejected > 0.5


def test_a_raised_threshold_accepts_more(keyword_spotter, enrolled, tmp_path):
    """Through the bank file: a keyword whose threshold sits just under its nearest held-back
    clip accepts none of them; raised to the farthest, it accepts every clip it is nearest to."""
    bank, held = enrolled
    name, paths = next(iter(held.items()))
    j = bank.names.index(name)
    d = keyword_distances(bank, keyword_spotter.embed_files(paths))  # [n, n_kw]
    mine = d[:, j][d.argmin(axis=1) == j]  # clips this keyword is nearest to
    assert len(mine), f"no held-back clip of {name!r} is nearest to it"

    def accepted(threshold: float) -> int:
        changed = keyword_spotter.new_bank()
        for kw in bank.keywords:
            changed.add(dataclasses.replace(kw, threshold=threshold) if kw.name == name else kw)
        changed = load_bank(save_bank(changed, tmp_path / "changed.npz"))
        return sum(r.keyword == name for r in keyword_spotter.classify(changed, paths))

    low, high = accepted(0.99 * d[:, j].min()), accepted(1.01 * mine.max())
    assert low == 0 and high >= len(mine) and high > low


def test_a_held_back_clip_in_running_audio_is_detected_as_its_keyword(
        keyword_spotter, enrolled, keyword_clips, trained_run_kind):
    """Held-back clips of each keyword and clips of the unenrolled word, between faint noise: the
    keywords are found where they are spoken, the other word is not taken for one."""
    if trained_run_kind == "smoke":
        pytest.skip("spotting in running audio needs a real encoder (the shipped default or "
                    "KWS_TEST_MODEL), not the 40-episode smoke encoder")
    bank, held = enrolled
    sr = keyword_spotter.features.sample_rate
    rng = np.random.default_rng(0)
    words = [(name, p) for name, paths in held.items() for p in paths[:5]]
    words += [(None, p) for p in keyword_clips["unknown"][:5]]
    parts, truth, other, t = [], [], [], 0.5
    for i in rng.permutation(len(words)):
        name, path = words[i]
        y = read_audio(path, sr)
        parts += [0.001 * rng.standard_normal(int(0.5 * sr)).astype(np.float32), y]
        (truth if name else other).append(Event(name or "other", t, t + len(y) / sr))
        t += 0.5 + len(y) / sr + 0.5
        parts.append(0.001 * rng.standard_normal(int(0.5 * sr)).astype(np.float32))
    events = keyword_spotter.detect(bank, np.concatenate(parts)).events
    r = match_events(events, truth)
    on_other = [e for e in events if any(e.start < o.end and o.start < e.end for o in other)]
    assert r["hits"] >= 0.7 * len(truth), r
    assert r["false_alarms"] <= 2 and len(on_other) <= 1, (r, on_other)


def test_classify_rule_nearest_within_threshold():
    d = np.array([[1.0, 2.0, 3.0],   # nearest within: 0
                  [5.0, 2.0, 9.0],   # 0 out of its threshold, 1 within: 1
                  [9.0, 9.0, 9.0]])  # none within: unknown
    np.testing.assert_array_equal(decide(d, np.array([4.0, 3.0, 1.0])), [0, 1, -1])


def test_threshold_rule_from_support_and_negatives():
    rng = np.random.default_rng(0)
    support = rng.normal(size=(5, 16))
    t, info = calibrate_threshold(support)
    loo = [np.sum((support[i] - np.delete(support, i, 0).mean(0)) ** 2) for i in range(5)]
    assert t == pytest.approx(1.25 * np.mean(loo), rel=1e-5)  # the documented rule
    assert "negatives" not in info
    near = support.mean(0) + 0.1 * rng.normal(size=(40, 16))  # negatives close to the prototype
    t2, info2 = calibrate_threshold(support, near)
    assert t2 < t and info2["negatives"] == 40 and info2["negatives_accepted"] <= 0.1
    with pytest.raises(ConfigError, match="at least 2"):
        calibrate_threshold(support[:1])


def test_threshold_rule_over_views():
    rng = np.random.default_rng(1)
    views = rng.normal(size=(4, 3, 8))  # 4 clips x 3 views
    t, info = calibrate_threshold(views)
    clips = views.mean(axis=1)
    loo = [np.mean([np.sum((views[i, v] - np.delete(clips, i, 0).mean(0)) ** 2) for v in range(3)])
           for i in range(4)]
    assert t == pytest.approx(1.25 * np.mean(loo), rel=1e-5)
    assert info["loo"] == pytest.approx(loo, rel=1e-5)
    flat = views[:, 0]
    assert calibrate_threshold(flat)[0] == pytest.approx(calibrate_threshold(flat[:, None])[0])


def test_threshold_rule_with_a_weighted_prototype():
    """Each clip against the weighted mean of the others; negatives against the weighted mean."""
    rng = np.random.default_rng(2)
    views = rng.normal(size=(5, 3, 8))  # 5 clips x 3 views
    w = np.array([0.3, 0.2, 0.1, 0.2, 0.2])
    clips = views.mean(axis=1)
    loo = []
    for i in range(5):
        others = [c for c in range(5) if c != i]
        proto = sum(w[c] * clips[c] for c in others) / sum(w[c] for c in others)
        loo.append(np.mean([np.sum((views[i, v] - proto) ** 2) for v in range(3)]))
    t, info = calibrate_threshold(views, weights=w)
    assert t == pytest.approx(1.25 * np.mean(loo), rel=1e-5)
    assert info["loo"] == pytest.approx(loo, rel=1e-4)
    full = (w[:, None] * clips).sum(axis=0) / w.sum()
    np.testing.assert_allclose(prototype(clips, w), full, rtol=1e-5, atol=1e-6)
    near = full + 0.05 * rng.normal(size=(60, 8))
    t2, info2 = calibrate_threshold(views, near, weights=w, quantile=0.1)
    assert t2 == pytest.approx(np.quantile(((near - full) ** 2).sum(axis=1), 0.1), rel=1e-5)
    assert info2["negatives_accepted"] <= 0.15
    # equal weights are the plain rule
    assert calibrate_threshold(views, weights=np.full(5, 0.2))[0] == pytest.approx(
        calibrate_threshold(views)[0], rel=1e-12)
    with pytest.raises(ConfigError, match="all the weight"):
        calibrate_threshold(views, weights=[1, 0, 0, 0, 0])


def test_enrolment_embeds_each_clip_at_the_shifts_a_window_sees(keyword_spotter, keyword_clips):
    paths = list(keyword_clips["keywords"].values())[0][:3]
    views = keyword_spotter.load_views(paths)  # [3, 3, n]
    hop = int(round(100.0 * keyword_spotter.features.sample_rate / 1000))
    assert ENROL_SHIFTS_MS == (-100.0, 0.0, 100.0)
    np.testing.assert_array_equal(views[:, 1], keyword_spotter.load_clips(paths))
    np.testing.assert_array_equal(views[:, 0, hop:], views[:, 1, :-hop])  # 100 ms earlier
    np.testing.assert_array_equal(views[:, 2, :-hop], views[:, 1, hop:])  # 100 ms later
    bank = keyword_spotter.new_bank()
    kw = keyword_spotter.enroll(bank, "kw", paths)
    e = keyword_spotter.embed(views.reshape(9, -1)).reshape(3, 3, -1)
    expected = e.mean(1)  # each clip: the mean of its three views
    np.testing.assert_allclose(kw.support, expected, atol=1e-5 * np.abs(expected).max())
    assert kw.calibration["views_ms"] == [-100.0, 0.0, 100.0] and len(kw.calibration["loo"]) == 3
    assert kw.support.shape == (3, keyword_spotter.embedding_dim) and len(kw.clips) == 3


def test_embeddings_do_not_depend_on_the_batch(keyword_spotter, keyword_clips):
    paths = keyword_clips["keywords"]["computer" if keyword_clips["source"] == "picovoice"
                                      else list(keyword_clips["keywords"])[0]][:4]
    together = keyword_spotter.embed_files(paths)
    alone = np.concatenate([keyword_spotter.embed_files([p]) for p in paths])
    np.testing.assert_allclose(together, alone, atol=1e-5 * np.abs(together).max())
    assert together.shape == (4, keyword_spotter.embedding_dim)


def test_a_bank_of_another_encoder_is_refused(keyword_spotter, enrolled, trained_run, tmp_path):
    other_dir = tmp_path / "other"
    shutil.copytree(trained_run, other_dir, ignore=shutil.ignore_patterns("checkpoints", "tb"))
    from kws_proto.model.loading import load_run_network

    _, bare = load_run_network(trained_run, head=False)  # the weights file holds no head
    weights = bare.encoder.get_weights()
    bare.encoder.set_weights([w + 0.01 if i == 0 else w for i, w in enumerate(weights)])
    bare.encoder.save_weights(other_dir / "best.weights.h5")
    other = KeywordSpotter.from_model(other_dir)
    assert other.fingerprint != keyword_spotter.fingerprint
    bank, held = enrolled
    with pytest.raises(BankError, match=f"bank fingerprint {bank.encoder.fingerprint[:16]}.*"
                                        f"this encoder {other.fingerprint[:16]}"):
        other.classify(bank, list(held.values())[0][:1])
    path = save_bank(bank, tmp_path / "b.npz")
    assert main(["classify", str(path), str(list(held.values())[0][0]), "--model",
                 str(other_dir)]) == 2
    orphan = other.new_bank()  # its encoder then disappears
    shutil.rmtree(other_dir)
    with pytest.raises(BankError, match="encoder cannot be loaded .*other.*--model"):
        KeywordSpotter.for_bank(orphan)


def test_enrol_errors_name_the_problem(keyword_spotter, keyword_clips, tmp_path):
    bank = keyword_spotter.new_bank()
    clips = list(keyword_clips["keywords"].values())[0]
    with pytest.raises(ConfigError, match="at least 2"):
        keyword_spotter.enroll(bank, "one", clips[:1])
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00junk")
    with pytest.raises(AudioError, match="broken.wav"):
        keyword_spotter.enroll(bank, "bad", [clips[0], broken])
    (tmp_path / "no_audio").mkdir()
    with pytest.raises(AudioError, match="no_audio: folder holds no"):
        keyword_spotter.enroll(bank, "bad", [clips[0], tmp_path / "no_audio"])
    kw = keyword_spotter.enroll(bank, "given", clips[:1], threshold=3.0)
    assert kw.threshold == 3.0 and len(bank) == 1


def test_cli_enroll_list_classify_remove(trained_run, keyword_clips, tmp_path, capsys):
    bank = tmp_path / "my.bank.npz"
    (a, pa), (b, pb) = list(keyword_clips["keywords"].items())[:2]
    assert main(["enroll", str(trained_run), "--bank", str(bank), "--keyword", a,
                 *map(str, pa[:N_SUPPORT])]) == 0
    # the second keyword: encoder taken from the bank itself, clips from a list
    assert main(["enroll", "--bank", str(bank), "--keyword", b, *map(str, pb[:N_SUPPORT]),
                 "--negatives", str(keyword_clips["unknown"][0]),
                 "--negatives", str(keyword_clips["unknown"][1])]) == 0
    assert main(["enroll", "--bank", str(bank), "--keyword", a, str(pa[0]), str(pa[1])]) == 2
    assert "already in the bank" in capsys.readouterr().err
    assert main(["enroll", "--model", str(trained_run), "--bank", str(bank), "--keyword", a,
                 "--replace", *map(str, pa[1:N_SUPPORT + 1])]) == 0
    assert load_bank(bank).names == [a, b] and load_bank(bank)[a].clips[0] == pa[1].name
    assert load_bank(bank)[b].calibration["negatives"] == 2

    capsys.readouterr()
    assert main(["bank", str(bank)]) == 0
    listing = capsys.readouterr().out
    assert f"'{a}': {N_SUPPORT} clips" in listing and pb[0].name in listing

    queries = [str(pa[-1]), str(pb[-1])]
    assert main(["classify", str(bank), *queries, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == queries
    for r in rows:
        assert {"path", "keyword", "distance", "runner_up", "runner_up_distance"} <= set(r)
        assert r["keyword"] in (a, b, "unknown") and r["runner_up"] in (a, b)
        assert r["keyword"] != r["runner_up"] and r["distance"] >= 0

    assert main(["enroll", "--bank", str(bank), "--remove", a]) == 0
    assert load_bank(bank).names == [b]
    bank.write_bytes(bank.read_bytes()[:-40])
    assert main(["classify", str(bank), queries[0]]) == 2
    assert "truncated" in capsys.readouterr().err


def test_distances_match_the_prototype_definition(keyword_spotter, enrolled, keyword_clips):
    bank, held = enrolled
    paths = list(held.values())[0][:3]
    emb = keyword_spotter.embed_files(paths)
    d = keyword_distances(bank, emb)
    e = emb.astype(np.float64)
    expected = ((e[:, None, :] - bank.prototypes[None]) ** 2).sum(-1)  # [n, n_kw]
    np.testing.assert_allclose(d, expected, rtol=1e-4, atol=1e-4 * expected.max())
