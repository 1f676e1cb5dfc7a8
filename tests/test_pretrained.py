"""The models shipped in kws_proto/model/pretrained (the trained member, protores_synth, and the
default fusing it with the Google speech embedding), and the publish step that makes them."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO, gse_installed, needs_gse

from kws_proto.errors import CheckpointError
from kws_proto.model.loading import build_network, load_run_network
from kws_proto.model.pretrained import (
    TRAINED,
    model_dir,
    read_record,
    resolve_model,
    weights_sha256,
)
from kws_proto.publish import embedding_fingerprint, probe_batch, publish


def test_shipped_model_is_small_and_recorded():
    path = model_dir(TRAINED)
    size = (path / "best.weights.h5").stat().st_size
    assert size <= 2 * 1024 * 1024, f"shipped weights are {size} bytes"
    record = read_record()
    for key in ("command", "data", "machine", "created", "git_commit", "scores"):
        assert record[key], key
    assert isinstance(record["seed"], int)
    assert record["weights_sha256"] == weights_sha256(path / "best.weights.h5")
    head = load_run_network(TRAINED)[0].head.kind  # the head it ships is the one recorded
    assert record["head"]["kind"] == head and (path / "head.npz").is_file() == (head != "none")


def test_shipped_weights_reproduce_their_embedding_fingerprint():
    record = read_record()
    cfg, net = load_run_network(TRAINED)
    got = np.asarray(embedding_fingerprint(net, cfg.features.shape))
    want = np.asarray(record["fingerprint"]["embeddings"])
    assert got.shape == want.shape == (record["fingerprint"]["probe_clips"], net.encoder.output_shape[-1])
    np.testing.assert_allclose(got, want, atol=record["fingerprint"]["atol"])
    # and the fingerprint is sensitive: a freshly initialised encoder of the same shape differs
    keras.utils.set_random_seed(0)
    fresh = build_network(cfg).embed(probe_batch(cfg.features.shape), training=False).numpy()
    assert np.abs(fresh - want).max() > 100 * record["fingerprint"]["atol"]


def test_default_is_the_shipped_member_fused_with_the_speech_embedding_and_its_head():
    """`default` is a fused model: the shipped trained member, centred with the very weights it
    ships (its recorded fingerprint), beside the frozen speech embedding and the shipped head on
    it, each weighed 1; its record names how it was made, and it has no network of its own."""
    from kws_proto.model.fusion import is_fusion, load_fusion

    assert is_fusion("default") and not is_fusion(TRAINED)
    fusion = load_fusion("default")
    assert [m.model for m in fusion.members] == [TRAINED, "gse", "gse-head"]
    assert [m.weight for m in fusion.members] == [1.0, 1.0, 1.0]
    assert fusion.members[0].fingerprint == read_record(TRAINED)["weights_fingerprint"]
    if gse_installed():  # the head's member was centred with the head it ships
        from kws_proto.spot.frozen import frozen_embedder

        assert fusion.members[2].fingerprint == frozen_embedder("gse-head").fingerprint
    record = read_record("default")
    assert record["fingerprint"] == fusion.fingerprint
    for key in ("command", "centre_data", "machine", "created", "git_commit", "scores"):
        assert record[key], key
    assert record["centre_data"]["clips"] == 1000
    with pytest.raises(CheckpointError, match=f"default: a fused model \\(members {TRAINED}, gse, gse-head\\)"):
        load_run_network("default")


@needs_gse
def test_default_spotter_embeds_with_every_member(keyword_clips):
    """`KeywordSpotter.from_model("default")` fuses the members' embeddings: its rows are the
    trained member's, the speech embedding's and its head's, each centred and of unit length."""
    from kws_proto.model.fusion import load_fusion
    from kws_proto.spot.spotter import KeywordSpotter

    spotter = KeywordSpotter.from_model("default")
    assert spotter.spec == "default" and spotter.fingerprint == load_fusion("default").fingerprint
    paths = next(iter(keyword_clips["keywords"].values()))[:3]
    fused = spotter.embed_files(paths)
    trained = KeywordSpotter.from_model(TRAINED).embed_files(paths)
    members = load_fusion("default").members
    assert fused.shape == (3, sum(m.dim for m in members))
    d = members[0].dim
    edges = np.cumsum([0] + [m.dim for m in members])
    for a, b in zip(edges[:-1], edges[1:]):
        np.testing.assert_allclose(np.linalg.norm(fused[:, a:b], axis=1), 1.0, rtol=1e-4)
    want = (trained - members[0].centre) / np.linalg.norm(trained - members[0].centre, axis=1, keepdims=True)
    np.testing.assert_allclose(fused[:, :d], want, atol=1e-4)


def test_unknown_model_name_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="no shipped model 'nope'.*make pretrained"):
        model_dir("nope")
    monkeypatch.chdir(tmp_path)  # a folder named "default" in the working directory wins
    (tmp_path / "default").mkdir()
    assert resolve_model("default") == tmp_path.joinpath("default").relative_to(tmp_path)
    assert resolve_model("runs/x").as_posix() == "runs/x"


def test_publish_writes_a_loadable_model_atomically(smoke_config, tmp_path):
    from conftest import train_run

    from kws_proto.config import HeadConfig

    run = tmp_path / "run"
    train_run(dataclasses.replace(smoke_config, head=HeadConfig(kind="cl2n", clips=50)), run)
    out = tmp_path / "models" / "mine"
    out.parent.mkdir()
    publish(run, out, "test", {"own_test_split": {"5w5s": [0.5, 0.1]}})
    publish(run, out, "test again", {})  # replacing an existing model
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine"]  # no temporary folders left
    record = json.loads((out / "record.json").read_text())
    assert record["command"] == "test again"
    # the tiny corpus: 16 training words x 10 voices
    assert record["head"] == {"kind": "cl2n", "clips": 50, "of_train_clips": 160, "seed": 0}
    assert (out / "head.npz").read_bytes() == (run / "head.npz").read_bytes()
    cfg, net = load_run_network(out)
    np.testing.assert_allclose(embedding_fingerprint(net, cfg.features.shape),
                               record["fingerprint"]["embeddings"], atol=1e-4)


@needs_gse
def test_publish_fused_writes_the_default_atomically(tmp_path):
    """`publish --fuse-only` (what `make pretrained` ends with) writes a loadable fused model of
    the shipped member, gse and its head, its record naming the command and the centre corpus, replacing
    an earlier one without leaving temporary folders."""
    from kws_proto.model.fusion import load_fusion
    from kws_proto.publish import publish_fused
    from kws_proto.spot.spotter import KeywordSpotter

    out = tmp_path / "models" / "fused"
    out.parent.mkdir()
    publish_fused(REPO / "tests" / "data", out, "first", episodes=2)
    publish_fused(REPO / "tests" / "data", out, "again", episodes=2)
    assert sorted(p.name for p in out.parent.iterdir()) == ["fused"]
    record = json.loads((out / "record.json").read_text())
    fusion = load_fusion(out)
    assert record["command"] == "again" and record["fingerprint"] == fusion.fingerprint
    assert [m.model for m in fusion.members] == [TRAINED, "gse", "gse-head"]
    assert fusion.centre_data["path"] == "tests/data" == record["centre_data"]["path"]  # no machine's path
    assert fusion.centre_data["clips"] == len([p for p in (REPO / "tests" / "data").rglob("*")
                                               if p.suffix in (".wav", ".flac")])
    assert KeywordSpotter.from_model(out).fingerprint == fusion.fingerprint


def test_make_pretrained_reuses_the_shipped_head_only_while_its_config_is_unchanged(tmp_path):
    """The shipped head was trained from the head config as it reads now, so `make pretrained`
    reuses it; a config that differs in one value, or a head folder without its record, is
    trained again."""
    from kws_proto.model.pretrained import MODELS_DIR
    from kws_proto.publish import HEAD_CONFIG, gse_head_is_current

    shipped = MODELS_DIR / "gse_head"
    assert gse_head_is_current(HEAD_CONFIG, shipped)
    changed = tmp_path / "head.yaml"
    changed.write_text(HEAD_CONFIG.read_text().replace("episodes: 24000", "episodes: 23999"))
    assert changed.read_text() != HEAD_CONFIG.read_text()
    assert not gse_head_is_current(changed, shipped)
    assert not gse_head_is_current(HEAD_CONFIG, tmp_path)  # no record.json there
    # a head trained before a field existed is current while the config leaves it at its default
    record = json.loads((shipped / "record.json").read_text())
    del record["config"]["heads"]
    older = tmp_path / "older"
    older.mkdir()
    (older / "record.json").write_text(json.dumps(record))
    one = tmp_path / "one.yaml"
    one.write_text(HEAD_CONFIG.read_text().replace("heads: 3", "heads: 1"))
    assert gse_head_is_current(one, older) and not gse_head_is_current(HEAD_CONFIG, older)


def test_eval_default_from_the_command_line(synth_dataset):
    """`kws-proto eval default --json` scores the shipped encoder on the episodes its options
    name: the same rows as :func:`evaluate_run` in this process."""
    from kws_proto.eval.evaluate import EvalSetting, evaluate_run

    out = subprocess.run(
        [sys.executable, "-m", "kws_proto.cli", "eval", "default", "--data", str(synth_dataset),
         "--way", "2", "--shot", "1", "--query", "3", "--episodes", "20", "--seed", "3", "--json"],
        capture_output=True, text=True, check=True,
    )
    rows = json.loads(out.stdout)
    want = evaluate_run("default", [EvalSetting(2, 1, 3, 20)], data_dir=synth_dataset, seed=3,
                        progress=False)
    assert [(r["n_way"], r["k_shot"], r["n_query"], r["episodes"]) for r in rows] == [(2, 1, 3, 20)]
    assert (rows[0]["mean"], rows[0]["ci95"]) == pytest.approx((want[0]["mean"], want[0]["ci95"]))


@pytest.fixture(scope="module")
def fsdd_scored(fsdd_dir, tmp_path_factory):
    """FSDD indexed and opened once with the shipped encoder's front end (speaker-disjoint
    support and query), and the shipped network: ``(data, cfg, net)``."""
    from data_prep.folder import index_folder
    from kws_proto.data.experiment import open_data

    root = tmp_path_factory.mktemp("fsdd") / "fsdd"
    index_folder(fsdd_dir, root, progress=False)
    cfg, net = load_run_network(TRAINED)
    data = open_data(root, cfg.features, None, speaker_disjoint=True, progress=False)
    return data, cfg, net


@pytest.mark.shared
def test_shipped_encoder_reproduces_its_recorded_fsdd_scores(fsdd_scored):
    """`publish` recorded 5-way 1- and 5-shot accuracy on FSDD (15 queries, 1,000 episodes of
    seed 0, speaker-disjoint): the same weights, head, front end and episodes give them again.
    The tolerance admits a few dozen of the 75,000 queries decided otherwise by another CPU's
    rounding, a tenth of the recorded CI."""
    from kws_proto.eval.evaluate import EvalSetting, eval_episodes, evaluate_episodes
    from kws_proto.eval.suites import FSDD

    data, _, net = fsdd_scored
    recorded = read_record()["scores"]["fsdd"]
    for shot in (1, 5):
        mean, ci95 = recorded[f"5w{shot}s"]
        episodes = eval_episodes(data, FSDD.classes, EvalSetting(5, shot, 15, 1000), seed=0)
        got = evaluate_episodes(net, data, episodes)
        assert got.mean == pytest.approx(mean, abs=max(1e-3, 0.1 * ci95)), shot


@pytest.mark.shared
def test_pretrained_beats_random_init_and_dtw_on_fsdd(fsdd_scored):
    """5-way 5-shot, speaker-disjoint, on digits it never trained on: the shipped encoder is
    ahead of a randomly initialised encoder of the same shape and of MFCC + DTW on its own
    features, episode by episode beyond the paired 95% CI."""
    from kws_proto.eval.dtw import dtw_scores
    from kws_proto.eval.evaluate import (
        EvalSetting,
        embedding_table,
        eval_episodes,
        score_episodes,
    )
    from kws_proto.eval.suites import FSDD
    from kws_proto.util.stats import paired_difference

    data, cfg, trained = fsdd_scored
    episodes = eval_episodes(data, FSDD.classes, EvalSetting(5, 5, 15, 100), seed=0)

    def accuracies(net):
        return score_episodes(embedding_table(net, data.features, episodes), episodes).accuracies

    keras.utils.set_random_seed(0)
    ours = accuracies(trained)
    baselines = {"random init": accuracies(build_network(cfg)),
                 "MFCC + DTW": dtw_scores(data.features, episodes).accuracies}
    for name, acc in baselines.items():
        d = paired_difference(ours, acc)
        assert d.mean - d.ci95 > 0, f"{name}: {d}"


def test_enroll_and_classify_with_model_default(keyword_clips, tmp_path, capsys):
    """`--model default` enrols with the shipped encoder; the bank remembers it for classify."""
    from kws_proto.cli import main
    from kws_proto.spot.bank import load_bank

    bank = tmp_path / "default.bank.npz"
    (a, pa), (b, pb) = list(keyword_clips["keywords"].items())[:2]
    for name, paths in ((a, pa), (b, pb)):
        assert main(["enroll", "--model", "default", "--bank", str(bank), "--keyword", name,
                     *map(str, paths[:5])]) == 0
    assert load_bank(bank).encoder.spec == "default"
    capsys.readouterr()
    assert main(["classify", str(bank), str(pa[-1]), str(pb[-1]), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == [str(pa[-1]), str(pb[-1])]
    assert [r["nearest"] for r in rows] == [a, b]  # held-back clips of the two keywords
