"""Bad input never silently changes a result: each is refused (or left out and counted) with a
message naming the file, key or option.  Real files in tmp_path, the real command lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from data_prep.cli import main as prep
from kws_proto.cli import main as kws

FSDD_CLIPS = sorted((REPO / "tests" / "data" / "fsdd").glob("*.wav"))  # 4 clips, 8 kHz


def _write(path, y, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(y, np.float32), sr)
    return path


def _bad_clips(tmp_path):
    """An all-zero second and a 0.05 s clip of loud noise."""
    rng = np.random.default_rng(0)
    return (_write(tmp_path / "bad" / "zeros.wav", np.zeros(16000)),
            _write(tmp_path / "bad" / "blip.wav", 0.3 * rng.standard_normal(800)))


def _digits(root, copies=1):
    """``root/<digit>/<n>.wav``: the test FSDD clips, each ``copies`` times."""
    for p in FSDD_CLIPS:
        (root / p.name[0]).mkdir(parents=True, exist_ok=True)
        for i in range(copies):
            shutil.copy(p, root / p.name[0] / f"{i}.wav")
    return root


def _error(capsys, argv, cli=kws) -> str:
    """The one-line error of a refused command (exit code 2)."""
    assert cli(argv) == 2
    return capsys.readouterr().err


# -- 1: silent and too-short clips -----------------------------------------------------------
def test_enroll_refuses_a_silent_or_too_short_support_clip(tmp_path, capsys, trained_run, keyword_clips):
    good = [str(p) for p in next(iter(keyword_clips["keywords"].values()))[:2]]
    bank = tmp_path / "k.bank.npz"
    zeros, blip = _bad_clips(tmp_path)
    err = _error(capsys, ["enroll", str(trained_run), "--bank", str(bank), "--keyword", "k",
                          *good, str(zeros)])
    assert "zeros.wav: silent: digital silence" in err and "-50 dBFS" in err
    err = _error(capsys, ["enroll", str(trained_run), "--bank", str(bank), "--keyword", "k",
                          *good, str(blip)])
    assert "blip.wav: too short: 0.050 s of audio" in err
    assert not bank.exists()


def test_folder_build_skips_counts_and_names_silent_and_short_clips(tmp_path, capsys):
    src = _digits(tmp_path / "src")
    zeros, blip = _bad_clips(tmp_path)
    shutil.copy(zeros, src / "1" / "zeros.wav")
    shutil.copy(blip, src / "5" / "blip.wav")
    assert prep(["folder", str(src), str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "indexed 4 of 6 clips" in out and "2 unusable (2 of them silent or shorter than a word)" in out
    assert "skipped 1/zeros.wav: silent" in out and "skipped 5/blip.wav: too short" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"]["skipped"] == 2 and report["counts"]["silent_or_short"] == 2
    assert {s["path"] for s in report["skipped"]} == {"1/zeros.wav", "5/blip.wav"}
    assert "zeros" not in (tmp_path / "out" / "manifest.csv").read_text()


# -- 2: every number of the command lines ------------------------------------------------------
@pytest.mark.parametrize("cli, argv, option", [
    (kws, ["detect", "b.npz", "a.wav", "--min-hits", "-3"], "--min-hits"),
    (kws, ["detect", "b.npz", "a.wav", "--hop", "0"], "--hop"),
    (kws, ["detect", "b.npz", "a.wav", "--max-gap", "-1"], "--max-gap"),
    (kws, ["detect", "b.npz", "a.wav", "--min-db", "nan"], "--min-db"),
    (kws, ["detect", "b.npz", "--mic", "--seconds", "-1"], "--seconds"),
    (kws, ["enroll", "default", "--bank", "b.npz", "--keyword", "k", "a.wav", "--threshold", "-1"],
     "--threshold"),
    (kws, ["eval", "default", "--way", "0"], "--way"),
    (kws, ["eval", "default", "--shot", "1", "-5"], "--shot"),
    (kws, ["eval", "default", "--query", "0"], "--query"),
    (kws, ["eval", "default", "--episodes", "2.5"], "--episodes"),
    (kws, ["eval", "default", "--seed", "-1"], "--seed"),
    (kws, ["compare", "c.yaml", "--episodes", "0"], "--episodes"),
    (kws, ["compare", "c.yaml", "--query", "x"], "--query"),
    (kws, ["train", "c.yaml", "--logical-cpus", "-2"], "--logical-cpus"),
    (kws, ["spot-eval", "default", "--data", "d", "--trials", "0"], "--trials"),
    (kws, ["spot-eval", "default", "--data", "d", "--shots", "0"], "--shots"),
    (kws, ["spot-eval", "default", "--data", "d", "--target-ratio", "1.5"], "--target-ratio"),
    (kws, ["spot-eval", "default", "--data", "d", "--factors", "1,-2"], "--factors"),
    (kws, ["spot-eval", "default", "--data", "d", "--snr", "inf"], "--snr"),
    (prep, ["folder", "a", "b", "--sr", "0"], "--sr"),
    (prep, ["folder", "a", "b", "--duration", "-1"], "--duration"),
    (prep, ["folder", "a", "b", "--workers", "0"], "--workers"),
    (prep, ["synth", "o", "--words", "0"], "--words"),
    (prep, ["synth", "o", "--speakers", "-1"], "--speakers"),
    (prep, ["synth", "o", "--noise-seconds", "0"], "--noise-seconds"),
    (prep, ["split", "d", "--test", "-1"], "--test"),
    (prep, ["split", "d", "--min-speakers", "0"], "--min-speakers"),
    (prep, ["speech-commands", "o", "--timeout", "0"], "--timeout"),
])
def test_every_command_line_number_is_checked_naming_its_option(capsys, cli, argv, option):
    with pytest.raises(SystemExit) as e:
        cli(argv)
    assert e.value.code == 2
    assert f"error: argument {option}: '{argv[-1]}'" in capsys.readouterr().err


def test_a_bad_grid_item_is_named(tmp_path, capsys):
    err = _error(capsys, ["compare", str(tmp_path / "c.yaml"), "--grid", "5x1,0x5"])
    assert "--grid item '0x5'" in err


# -- 3: messages that say what is wrong -------------------------------------------------------
def test_eval_names_a_class_the_dataset_lacks(tmp_path, capsys):
    assert prep(["folder", str(_digits(tmp_path / "src")), str(tmp_path / "ds"), "--quiet"]) == 0
    capsys.readouterr()
    err = _error(capsys, ["eval", "default", "--data", str(tmp_path / "ds"), "--classes", "1,5,zz",
                          "--way", "5", "--episodes", "2", "--json"])
    assert "'zz' is not in the dataset (its keywords: 1, 5, 7, 9)" in err


def test_eval_of_a_shipped_model_needs_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a project without the shipped encoder's corpus
    err = _error(capsys, ["eval", "protores_synth"])
    assert "`protores_synth` needs --data" in err and "data/synth-870x50-flite65" in err and "apt-get" not in err
    err = _error(capsys, ["eval", "default"])  # the fused default has no corpus of its own
    assert "`eval default` needs --data" in err


def test_enroll_names_a_missing_run_or_clip_folder(tmp_path, capsys, trained_run):
    clips = [str(p) for p in FSDD_CLIPS[:2]]
    bank = tmp_path / "new.bank.npz"
    err = _error(capsys, ["enroll", str(tmp_path / "runs" / "nosuchrun"), "--bank", str(bank),
                          "--keyword", "k", *clips])
    assert f"{tmp_path / 'runs' / 'nosuchrun'}: no such run directory" in err
    missing = tmp_path / "my_clips" / "jarvis"
    err = _error(capsys, ["enroll", str(trained_run), "--bank", str(bank), "--keyword", "jarvis",
                          f"{missing}/"])
    assert f"{missing}: no such file or folder" in err
    assert not bank.exists()


def test_a_text_file_or_a_folder_given_as_a_bank_is_named(tmp_path, capsys):
    text = tmp_path / "notes.npz"
    text.write_text("alexa, jarvis\n")
    err = _error(capsys, ["bank", str(text)])
    assert f"{text}: a text file, not a keyword bank" in err
    folder = tmp_path / "banks"
    folder.mkdir()
    err = _error(capsys, ["bank", str(folder)])
    assert f"{folder}: is a directory, not a keyword bank" in err
    err = _error(capsys, ["enroll", "default", "--bank", str(folder), "--keyword", "k", *map(str, FSDD_CLIPS)])
    assert f"{folder}: is a directory, not a keyword bank" in err


# -- 4: each default once in --help -----------------------------------------------------------
def _subcommand_helps():
    from kws_proto.util.cli import build_parser

    for package, prog in (("kws_proto.cli", "kws-proto"), ("data_prep.commands", "kws-prep")):
        parser = build_parser(package, prog)
        sub = next(a for a in parser._actions if a.dest == "command")
        for name, p in sub.choices.items():
            yield f"{prog} {name}", p.format_help()


def test_help_shows_each_default_once():
    for name, text in _subcommand_helps():
        flat = " ".join(text.split())
        assert "(default: None)" not in flat and "(default: False)" not in flat, name
        assert not re.search(r"default[^()]*\)\s*\(default:", flat), name
    helps = dict(_subcommand_helps())
    assert "(default: runs/<config name>)" in " ".join(helps["kws-proto train"].split())
    assert "(default: 0.1)" in " ".join(helps["kws-proto detect"].split())
    assert "(default: 0)" in " ".join(helps["kws-proto train"].split())  # a 0 is a default too


# -- 5: TensorFlow's start-up chatter ---------------------------------------------------------
def test_tensorflow_commands_print_no_start_up_chatter(tmp_path):
    assert prep(["folder", str(_digits(tmp_path / "src", copies=2)), str(tmp_path / "ds"), "--quiet"]) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    done = subprocess.run(
        [sys.executable, "-m", "kws_proto.cli", "eval", "default", "--data", str(tmp_path / "ds"),
         "--classes", "1,5,7", "--way", "2", "--shot", "1", "--query", "1", "--episodes", "2",
         "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["episodes"] == 2
    assert not re.search(r"oneDNN|cuda|absl|cpu_feature_guard", done.stderr), done.stderr


def test_the_start_up_filter_keeps_every_other_line(capfd):
    from kws_proto.util.quiet_tf import filtered_stderr

    with filtered_stderr():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 my_op.cc:1] the user's own error\n")
    assert capfd.readouterr().err == "E0000 my_op.cc:1] the user's own error\n"


def test_tflite_export_prints_no_absl_notice(tmp_path, capfd, trained_run):
    assert kws(["export", str(trained_run), str(tmp_path / "e.tflite"), "--format", "tflite"]) == 0
    out, err = capfd.readouterr()
    assert "exported tflite" in out
    assert "trackable_obj" not in err and "absl" not in err


# -- the bank's atomic write: a killed writer's temporary goes with the next write --------------
def test_a_killed_enrolls_temporary_is_removed_by_the_next_write_of_the_bank(tmp_path, capsys):
    from test_bank import _bank

    from kws_proto.spot.bank import load_bank, save_bank

    bank = save_bank(_bank(), tmp_path / "my.bank.npz")
    kill = ("import os, signal, sys; from kws_proto.util.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'PK half a bank')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", kill, str(bank)], cwd=REPO)
    assert done.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".my.bank.npz")]
    assert len(left) == 1 and re.fullmatch(r"\.tmp\d+\.my\.bank\.npz", left[0].name)
    assert kws(["enroll", "--bank", str(bank), "--remove", "jarvis"]) == 0
    assert "removed 'jarvis'" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.bank.npz"]
    assert load_bank(bank).names == ["smart mirror"]


# -- 6: a copied or moved checkout keeps its runs ---------------------------------------------
def test_a_copied_checkout_keeps_its_runs_and_a_changed_config_names_its_keys(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from kws_proto.config import load_config
    from kws_proto.errors import CheckpointError
    from kws_proto.eval.compare import ensure_trained
    from kws_proto.model.pretrained import TRAINED, model_dir
    from kws_proto.model.runs import RunDir

    old = tmp_path / "old"
    (old / "data" / "ds").mkdir(parents=True)
    (old / "conv4.yaml").write_text("data: {dataset: data/ds, source: prepared}\n")
    monkeypatch.chdir(old)
    run = RunDir("runs/demo/conv4")
    run.write_config(load_config("conv4.yaml"))
    run.best_weights.write_bytes(b"weights")
    run.write_result({"parameters": 1})
    assert "dataset: ../../../data/ds\n" in run.config_path.read_text()  # relative to the run

    shutil.move(old, tmp_path / "new")
    monkeypatch.chdir(tmp_path / "new")
    assert ensure_trained(load_config("conv4.yaml"), Path("runs/demo"), progress=False) == run
    assert "reusing finished run runs/demo/conv4" in capsys.readouterr().out
    assert run.read_config().data.dataset == str((tmp_path / "new" / "data" / "ds").resolve())

    Path("conv4.yaml").write_text("data: {dataset: data/ds, source: prepared}\ntrain: {episodes: 7}\n")
    with pytest.raises(CheckpointError, match=r"another config named 'conv4' \(train\.episodes: \d+ -> 7\)"):
        ensure_trained(load_config("conv4.yaml"), Path("runs/demo"), progress=False)

    outside = RunDir(tmp_path / "elsewhere")  # a run outside the project (and older runs): absolute
    outside.write_config(load_config("conv4.yaml"))
    assert f"dataset: {(tmp_path / 'new' / 'data' / 'ds').resolve()}\n" in outside.config_path.read_text()
    assert outside.read_config() == load_config("conv4.yaml")
    # the shipped model's path relative to the repository keeps its meaning (the current directory)
    assert RunDir(model_dir(TRAINED)).read_config().data.dataset == "data/synth-870x50-flite65"
