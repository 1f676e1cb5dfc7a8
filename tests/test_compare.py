"""`compare` end to end on two tiny configs: identical episodes, the table, the plots."""

from __future__ import annotations

import csv
import dataclasses
import math
import os

import numpy as np
import pytest

from kws_proto.config import dump_config
from kws_proto.eval.evaluate import EvalSetting
from kws_proto.eval.report import COLUMNS
from kws_proto.model.runs import RunDir


def _tiny(cfg, name, encoder, params, **train):
    return dataclasses.replace(
        cfg, name=name,
        model=dataclasses.replace(cfg.model, encoder=encoder, params=params),
        train=dataclasses.replace(cfg.train, episodes=10, val_every=10, **train),
    )


@pytest.mark.slow
def test_compare_two_tiny_configs(smoke_config, tmp_path):
    from kws_proto.eval.compare import compare

    paths = []
    # "res" keeps a core for its feed: its pools differ from this process's, so compare trains
    # it in a fresh process
    for cfg in (_tiny(smoke_config, "seq", "conv4", {"filters": 4}),
                _tiny(smoke_config, "res", "protores", {"stem_filters": 4, "filters": [4, 6, 8]},
                      feed_cores=1)):
        paths.append(tmp_path / f"{cfg.name}.yaml")
        paths[-1].write_text(dump_config(cfg))
    settings = [EvalSetting(2, 1, 3, 30), EvalSetting(2, 2, 3, 30)]
    out = tmp_path / "report"
    models = compare(paths, out, runs_root=tmp_path / "runs", settings=settings, progress=False)

    with open(out / "results.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    from kws_proto.eval.gse import available

    baselines = ("gse", "mfcc-dtw") if available() else ("mfcc-dtw",)  # the peer when installed
    assert [(r["model"], r["k_shot"]) for r in rows] == [
        (m, k) for m in ("seq", "res", *baselines) for k in ("1", "2")
    ]
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0 and int(r["episodes"]) == 30
        # the Sequential encoder is the reference of the paired differences
        assert math.isnan(float(r["diff_vs_reference"])) == (r["model"] == "seq")
        assert r["reference"] == "seq"
        assert math.isnan(float(r["diff_vs_dtw"])) == (r["model"] == "mfcc-dtw")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = {m: RunDir(tmp_path / "runs" / m).read_result()["threads"] for m in ("seq", "res")}
    assert threads == {"seq": {"intra_op": 0, "inter_op": 0},
                       "res": {"intra_op": max(1, cores - 1), "inter_op": 1}}
    by_name = {m.name: m for m in models}
    diff = float(next(r for r in rows if r["model"] == "res" and r["k_shot"] == "1")["diff_vs_reference"])
    assert diff == pytest.approx(
        (by_name["res"].accuracies[(2, 1)] - by_name["seq"].accuracies[(2, 1)]).mean()
    )
    vs_dtw = float(next(r for r in rows if r["model"] == "seq" and r["k_shot"] == "2")["diff_vs_dtw"])
    assert vs_dtw == pytest.approx(
        (by_name["seq"].accuracies[(2, 2)] - by_name["mfcc-dtw"].accuracies[(2, 2)]).mean()
    )
    md = (out / "results.md").read_text()
    assert "command:" in md and "seed 0" in md and "machine:" in md and "| res | protores |" in md
    for png in ("learning_curves.png", "accuracy_by_shot.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(out.glob("confusion_*.png")) and list(out.glob("embeddings_*.png"))

    # a second compare reuses the finished runs instead of training again
    stamp = (tmp_path / "runs" / "seq" / "result.json").stat().st_mtime_ns
    compare(paths[:1], tmp_path / "again", runs_root=tmp_path / "runs", settings=settings[:1],
            dtw=False, progress=False)
    assert (tmp_path / "runs" / "seq" / "result.json").stat().st_mtime_ns == stamp


def test_a_run_of_another_config_stops_compare_and_the_demo_moves_it_aside(smoke_config, tmp_path):
    from kws_proto.eval.compare import ensure_trained, retire_stale_run
    from kws_proto.config import HeadConfig
    from kws_proto.errors import CheckpointError

    old = _tiny(smoke_config, "res", "protores", {"stem_filters": 4, "filters": [4, 6, 8]})
    new = dataclasses.replace(old, train=dataclasses.replace(old.train, episodes=20))
    runs = tmp_path / "runs"
    RunDir(runs / "res").write_config(old)
    (runs / "res" / "best.weights.h5").write_bytes(b"old weights")

    with pytest.raises(CheckpointError, match="another config named 'res'"):
        ensure_trained(new, runs, progress=False)
    assert retire_stale_run(old, runs) is None  # same config: left where it is
    assert retire_stale_run(dataclasses.replace(old, head=HeadConfig(kind="cl2n")), runs) is None
    assert (runs / "res" / "best.weights.h5").is_file()  # a new head is refitted, not retrained

    aside = retire_stale_run(new, runs)
    assert aside == runs / "res.old-1" and not (runs / "res").exists()
    assert RunDir(aside).read_config() == old  # moved whole, nothing deleted
    assert (aside / "best.weights.h5").read_bytes() == b"old weights"
    assert retire_stale_run(new, runs) is None  # nothing left to move

    RunDir(runs / "res").write_config(old)  # a second stale run does not overwrite the first
    assert retire_stale_run(new, runs) == runs / "res.old-2"
    assert RunDir(aside).read_config() == old


def _scores(name, accs, ms=float("nan")):
    from kws_proto.eval.compare import ModelScores

    return ModelScores(name, name, {"ms_per_episode": ms}, accuracies={(5, 1): np.asarray(accs)})


def test_the_answer_states_the_paired_difference_and_the_speed_ratio():
    from kws_proto.eval.report import answer

    rng = np.random.default_rng(0)
    seq = rng.uniform(0.3, 0.6, 400)
    design = np.clip(seq + 0.1 + rng.normal(0, 0.05, 400), 0, 1)
    default = np.clip(design + 0.02, 0, 1)
    models = [_scores("conv4", seq, 800.0), _scores("protores_design", design, 50.0),
              _scores("protores", default, 80.0)]
    text = answer(models, EvalSetting(5, 1), "protores_design", "conv4", "protores", "on test words")
    diff = design - seq
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))  # the paired 95% CI, computed here
    assert text.startswith(f"On test words, ProtoRes (design) beats Sequential by "
                           f"{100 * diff.mean():+.1f} ± {100 * half:.1f} points at 5-way 1-shot")
    assert "trains 16.0× faster per episode" in text
    assert f"adds {100 * (default - design).mean():+.1f}" in text
    worse = answer([_scores("conv4", design), _scores("protores_design", seq)], EvalSetting(5, 1),
                   "protores_design")
    assert "loses to Sequential" in worse and "faster" not in worse


def test_paired_differences_against_a_named_reference():
    from kws_proto.errors import ConfigError
    from kws_proto.eval.report import result_rows

    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 1, 50), rng.uniform(0, 1, 50)
    models = [_scores("basic", a), _scores("preact", b)]
    for m in models:
        m.info.update(parameters=1, embedding_dim=2, train_minutes=0.0, ms_per_clip=1.0)
    rows = result_rows(models, [EvalSetting(5, 1)], reference="basic")
    assert [r["reference"] for r in rows] == ["basic", "basic"]
    assert math.isnan(rows[0]["diff_vs_reference"])
    assert rows[1]["diff_vs_reference"] == pytest.approx((b - a).mean())
    no_ref = result_rows(models, [EvalSetting(5, 1)])  # no Sequential encoder among them
    assert all(math.isnan(r["diff_vs_reference"]) for r in no_ref)
    with pytest.raises(ConfigError, match="reference='conv5' is none of the compared models"):
        result_rows(models, [EvalSetting(5, 1)], reference="conv5")
