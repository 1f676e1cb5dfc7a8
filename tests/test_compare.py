"""`compare`: every model scored on the same episodes, paired differences, the report, reusing
or refusing a stored run, and errors that name the bad input.

The tests of one compare share a single run of it over two tiny configs (module fixture
``compared``): a Sequential encoder trained in this process and a ProtoRes whose thread pools
differ from this process's, which compare trains in a fresh ``kws-proto train`` process; the
baselines are MFCC + DTW and, when its extra is installed, the Google speech embedding.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import shutil

import numpy as np
import pytest

from kws_proto.cli import main
from kws_proto.config import HeadConfig, dump_config, load_config
from kws_proto.errors import CheckpointError
from kws_proto.eval.compare import DTW_NAME, GSE_NAME, compare
from kws_proto.eval.evaluate import EvalSetting, eval_episodes, open_eval_data, score_episodes
from kws_proto.eval.ewn import available as ewn_available
from kws_proto.eval.frozen import frozen_table
from kws_proto.eval.gse import available as gse_available
from kws_proto.eval.report import COLUMNS
from kws_proto.model.runs import RunDir

from conftest import REPO, TINY_SYNTH

SETTINGS = [EvalSetting(2, 1, 3, 30), EvalSetting(2, 2, 3, 30)]
#: the baselines compare adds by default: the Google speech embedding when its extra is installed
BASELINES = (GSE_NAME, DTW_NAME) if gse_available() else (DTW_NAME,)


def _tiny(cfg, name, encoder, params, **train):
    return dataclasses.replace(
        cfg, name=name,
        model=dataclasses.replace(cfg.model, encoder=encoder, params=params),
        train=dataclasses.replace(cfg.train, episodes=10, val_every=10, **train),
    )


def _write(cfg, folder):
    path = folder / f"{cfg.name}.yaml"
    path.write_text(dump_config(cfg))
    return path


@dataclasses.dataclass
class Compared:
    """One finished compare: its config files, runs folder, report folder and returned models."""

    paths: list
    runs: object
    out: object
    models: dict  # name -> ModelScores

    def rows(self) -> list[dict]:
        with open(self.out / "results.csv") as f:
            return list(csv.DictReader(f))

    def row(self, model: str, k_shot: int) -> dict:
        return next(r for r in self.rows() if r["model"] == model and r["k_shot"] == str(k_shot))


@pytest.fixture(scope="module")
def compared(synth_dataset, tmp_path_factory) -> Compared:
    smoke = load_config(REPO / "experiments" / "configs" / "smoke.yaml",
                        overrides={"data": {"dataset": str(synth_dataset), **TINY_SYNTH}})
    tmp = tmp_path_factory.mktemp("compare")
    paths = [_write(_tiny(smoke, "seq", "conv4", {"filters": 4}), tmp),
             _write(_tiny(smoke, "res", "protores", {"stem_filters": 4, "filters": [4, 6, 8]},
                          feed_cores=1), tmp)]
    models = compare(paths, tmp / "report", runs_root=tmp / "runs", settings=SETTINGS,
                     progress=False, command="kws-proto compare seq.yaml res.yaml")
    return Compared(paths, tmp / "runs", tmp / "report", {m.name: m for m in models})


# --- one compare ------------------------------------------------------------------------------

@pytest.mark.slow
def test_every_model_is_scored_on_the_same_episodes_drawn_from_the_seed(compared):
    data = open_eval_data(load_config(compared.paths[0]), None, False, progress=False)
    for s in SETTINGS:
        want = eval_episodes(data, data.splits.test, s, seed=0)
        for name, m in compared.models.items():
            episodes, _ = m.confusion[(s.n_way, s.k_shot)]
            assert len(m.accuracies[(s.n_way, s.k_shot)]) == len(want) == s.episodes
            for got, w in zip(episodes, want):
                np.testing.assert_array_equal(got.support, w.support, err_msg=name)
                np.testing.assert_array_equal(got.query, w.query, err_msg=name)


@pytest.mark.slow
def test_differences_are_paired_against_the_sequential_encoder_and_dtw(compared):
    m = compared.models
    res_vs_seq = compared.row("res", 1)
    assert res_vs_seq["reference"] == "seq"
    assert float(res_vs_seq["diff_vs_reference"]) == pytest.approx(
        (m["res"].accuracies[(2, 1)] - m["seq"].accuracies[(2, 1)]).mean())
    assert float(compared.row("seq", 2)["diff_vs_dtw"]) == pytest.approx(
        (m["seq"].accuracies[(2, 2)] - m[DTW_NAME].accuracies[(2, 2)]).mean())
    # no difference of a model with itself
    assert math.isnan(float(compared.row("seq", 1)["diff_vs_reference"]))
    assert math.isnan(float(compared.row(DTW_NAME, 1)["diff_vs_dtw"]))


@pytest.mark.slow
def test_the_table_has_a_row_per_model_and_setting_in_order(compared):
    with open(compared.out / "results.csv") as f:
        assert tuple(csv.DictReader(f).fieldnames) == COLUMNS
    assert [(r["model"], r["k_shot"], r["episodes"]) for r in compared.rows()] == [
        (m, k, "30") for m in ("seq", "res", *BASELINES) for k in ("1", "2")]
    assert float(compared.row("res", 2)["accuracy"]) == pytest.approx(
        compared.models["res"].accuracies[(2, 2)].mean())


@pytest.mark.slow
def test_the_report_names_its_command_seed_and_machine_and_draws_the_plots(compared):
    md = (compared.out / "results.md").read_text()
    assert "kws-proto compare seq.yaml res.yaml" in md and "seed 0" in md and "machine:" in md
    assert "| res | protores |" in md and "| seq | conv4 |" in md
    for png in ("learning_curves.png", "accuracy_by_shot.png"):
        assert (compared.out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(compared.out.glob("confusion_*.png")) and list(compared.out.glob("embeddings_*.png"))


@pytest.mark.slow
def test_a_config_asking_for_other_thread_pools_trains_in_a_fresh_process(compared):
    """``res`` keeps a core for its feed (feed_cores 1); its run records the pools it had."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = {m: RunDir(compared.runs / m).read_result()["threads"] for m in ("seq", "res")}
    assert threads == {"seq": {"intra_op": 0, "inter_op": 0},
                       "res": {"intra_op": max(1, cores - 1), "inter_op": 1}}


# --- a stored run: reused, refitted or refused ------------------------------------------------

@pytest.fixture
def runs_copy(compared, tmp_path):
    """A copy of the compared runs, for the tests that change them."""
    return shutil.copytree(compared.runs, tmp_path / "runs")


@pytest.mark.slow
def test_a_finished_run_of_the_same_config_is_reused_not_retrained(compared, runs_copy, tmp_path):
    result = runs_copy / "seq" / "result.json"
    stamp, weights = result.stat().st_mtime_ns, (runs_copy / "seq" / "best.weights.h5").read_bytes()
    models = compare(compared.paths[:1], tmp_path / "again", runs_root=runs_copy,
                     settings=SETTINGS[:1], dtw=False, gse=False, progress=False)
    assert result.stat().st_mtime_ns == stamp
    assert (runs_copy / "seq" / "best.weights.h5").read_bytes() == weights
    np.testing.assert_array_equal(models[0].accuracies[(2, 1)],
                                  compared.models["seq"].accuracies[(2, 1)])


@pytest.mark.slow
@pytest.mark.skipif(not ewn_available(), reason="EfficientWord-Net is not installed: make ewn")
def test_ewn_is_scored_on_the_compared_episodes(compared, runs_copy, tmp_path):
    models = compare(compared.paths[:1], tmp_path / "ewn", runs_root=runs_copy,
                     settings=SETTINGS[:1], dtw=False, gse=False, ewn=True, progress=False)
    assert [m.name for m in models] == ["seq", "ewn"]
    ewn = models[1]
    assert ewn.info["embedding_dim"] == 2048 and ewn.info["ms_per_clip"] > 0
    data = open_eval_data(load_config(compared.paths[0]), None, progress=False)
    episodes = eval_episodes(data, data.splits.test, SETTINGS[0], 0)
    table = frozen_table("ewn", data.manifest, progress=False)  # every clip, cached
    np.testing.assert_array_equal(ewn.accuracies[(2, 1)],
                                  score_episodes(table, episodes).accuracies)
    assert "ewn" in (tmp_path / "ewn" / "results.csv").read_text()


@pytest.mark.slow
def test_a_config_changing_only_its_head_refits_the_head_on_the_same_weights(
        compared, runs_copy, tmp_path):
    cfg = load_config(compared.paths[0])
    path = _write(dataclasses.replace(cfg, head=HeadConfig(kind="cl2n", clips=20)), tmp_path)
    result = runs_copy / "seq" / "result.json"
    stamp, weights = result.stat().st_mtime_ns, (runs_copy / "seq" / "best.weights.h5").read_bytes()
    assert not (runs_copy / "seq" / "head.npz").exists()
    compare([path], tmp_path / "again", runs_root=runs_copy, settings=SETTINGS[:1], dtw=False,
            gse=False, progress=False)
    assert result.stat().st_mtime_ns == stamp  # not trained again
    assert (runs_copy / "seq" / "best.weights.h5").read_bytes() == weights
    assert (runs_copy / "seq" / "head.npz").is_file()
    assert RunDir(runs_copy / "seq").read_config().head.kind == "cl2n"


@pytest.mark.slow
def test_a_run_of_another_config_under_the_same_name_stops_compare(compared, runs_copy, tmp_path):
    cfg = load_config(compared.paths[0])
    path = _write(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, episodes=20)),
                  tmp_path)
    weights = (runs_copy / "seq" / "best.weights.h5").read_bytes()
    with pytest.raises(CheckpointError, match=r"another config named 'seq' \(train\.episodes: 10 -> 20"):
        compare([path], tmp_path / "again", runs_root=runs_copy, settings=SETTINGS[:1],
                dtw=False, gse=False, progress=False)
    assert (runs_copy / "seq" / "best.weights.h5").read_bytes() == weights


def test_the_demo_moves_a_stale_run_aside_whole_and_never_over_another(smoke_config, tmp_path):
    """:func:`retire_stale_run`: a run of another training config is renamed ``NAME.old-N``;
    a run of the same config, or one differing only in its head, stays."""
    from kws_proto.eval.compare import retire_stale_run

    old = _tiny(smoke_config, "res", "protores", {"stem_filters": 4, "filters": [4, 6, 8]})
    new = dataclasses.replace(old, train=dataclasses.replace(old.train, episodes=20))
    runs = tmp_path / "runs"
    RunDir(runs / "res").write_config(old)
    (runs / "res" / "best.weights.h5").write_bytes(b"old weights")

    assert retire_stale_run(old, runs) is None
    assert retire_stale_run(dataclasses.replace(old, head=HeadConfig(kind="cl2n")), runs) is None
    assert (runs / "res" / "best.weights.h5").is_file()

    aside = retire_stale_run(new, runs)
    assert aside == runs / "res.old-1" and not (runs / "res").exists()
    assert RunDir(aside).read_config() == old
    assert (aside / "best.weights.h5").read_bytes() == b"old weights"
    assert retire_stale_run(new, runs) is None  # nothing left to move

    RunDir(runs / "res").write_config(old)
    assert retire_stale_run(new, runs) == runs / "res.old-2"
    assert RunDir(aside).read_config() == old


# --- bad input, named before anything trains --------------------------------------------------

@pytest.mark.parametrize("args, named", [
    (["nope.yaml"], "nope.yaml: no such config file"),
    (["SMOKE", "SMOKE"], "compared configs need distinct names, got ['smoke', 'smoke']"),
    (["SMOKE", "--grid", "5x1,5y1"], "--grid item '5y1' must look like WAYxSHOT"),
    (["SMOKE", "--grid", "5x0"], "--grid item '5x0': way and shot must be positive"),
])
def test_the_command_names_bad_input_and_trains_nothing(args, named, tmp_path, capsys):
    smoke = str(REPO / "experiments" / "configs" / "smoke.yaml")
    argv = ["compare", *(smoke if a == "SMOKE" else a for a in args),
            "--runs-root", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


# --- the report's arithmetic, on made-up scores ------------------------------------------------

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


def test_the_fusion_answer_states_paired_differences_against_each_member():
    from kws_proto.eval.report import fusion_answer

    rng = np.random.default_rng(2)
    default = rng.uniform(0.4, 0.8, 300)
    gse = np.clip(default - 0.1 + rng.normal(0, 0.05, 300), 0, 1)
    fused = np.clip(default + 0.03 + rng.normal(0, 0.02, 300), 0, 1)
    models = [_scores("protores", default), _scores("gse", gse), _scores("fused", fused)]
    text = fusion_answer(models, EvalSetting(5, 1), "fused", "protores", "gse")
    for member in (default, gse):
        diff = fused - member
        half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))  # the paired 95% CI, computed here
        assert f"{100 * diff.mean():+.1f} ± {100 * half:.1f}" in text
    assert f"protores scores {100 * fused.mean():.1f} % at 5-way 1-shot" in text
    assert fusion_answer(models[:2], EvalSetting(5, 1), "fused", "protores", "gse") == ""
