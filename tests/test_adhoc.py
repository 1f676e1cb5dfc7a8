"""eval and spot-eval on a raw keyword folder: indexed on the fly into the user cache, scored as
the same folder prepared by `kws-prep folder`, the folder itself left untouched."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from data_prep.adhoc import CACHE_ENV, as_dataset
from data_prep.cli import main as prep
from kws_proto.cli import main
from kws_proto.errors import DatasetError

DATA = REPO / "tests" / "data"


@pytest.fixture
def raw(tmp_path, monkeypatch):
    """A raw folder of 4 keywords x 3 takes: two keyword folders and FSDD-style flat names, from
    the clips of tests/data (take i: the clip i x 60 ms later, with a little noise, so no two
    takes are alike); the user cache pointed into tmp_path."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    src = tmp_path / "raw"
    rng = np.random.default_rng(0)

    def takes(clip, out):
        y, sr = sf.read(clip, dtype="float32")
        for i, path in enumerate(out):
            late = np.concatenate([np.zeros(i * sr * 6 // 100, np.float32), y])
            sf.write(path, late + 1e-3 * rng.standard_normal(len(late)).astype(np.float32), sr)

    for word in ("computer", "jarvis"):
        (src / word).mkdir(parents=True)
        takes(next((DATA / "picovoice" / word).glob("*.flac")),
              [src / word / f"take{i}.flac" for i in range(3)])
    for name in ("1_jackson", "5_nicolas"):
        takes(DATA / "fsdd" / f"{name}_0.wav", [src / f"{name}_{i}.wav" for i in range(3)])
    return src


def _listing(root):
    return sorted((p.relative_to(root).as_posix(), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_a_raw_folder_is_indexed_once_into_the_user_cache(raw, tmp_path):
    before = _listing(raw)
    index = as_dataset(raw)
    assert index.parent == tmp_path / "cache" / "folders" and index.name.startswith("raw-")
    assert {"1", "5", "computer", "jarvis", "manifest.csv", "splits.json"} <= {
        p.name for p in index.iterdir()}
    assert json.loads((index / "splits.json").read_text())["test"] == ["1", "5", "computer", "jarvis"]
    stamp = (index / "manifest.csv").stat().st_mtime_ns
    assert as_dataset(raw) == index and (index / "manifest.csv").stat().st_mtime_ns == stamp
    assert as_dataset(index) == index  # a prepared dataset is itself
    assert _listing(raw) == before  # nothing written into the raw folder
    shutil.copyfile(raw / "jarvis" / "take0.flac", raw / "jarvis" / "take3.flac")
    assert as_dataset(raw) != index  # an edited folder is indexed anew
    with pytest.raises(DatasetError, match="neither a prepared dataset"):
        as_dataset(raw / "computer")  # holds files, but no keyword folders or LABEL_SPEAKER_N names
    with pytest.raises(DatasetError, match="nope: no such folder .not a prepared dataset"):
        as_dataset(tmp_path / "nope")


def test_eval_and_spot_eval_take_a_raw_folder(raw, tmp_path, capsys):
    args = ["eval", "default", "--way", "2", "--shot", "1", "--query", "2", "--episodes", "6",
            "--json"]
    assert main([*args, "--data", str(raw)]) == 0
    on_raw = json.loads(capsys.readouterr().out)
    prepared = tmp_path / "prepared"
    assert prep(["folder", str(raw), str(prepared), "--audio", "symlink", "--quiet"]) == 0
    capsys.readouterr()
    assert main([*args, "--data", str(prepared)]) == 0
    assert json.loads(capsys.readouterr().out) == on_raw  # the same episodes, the same scores
    assert on_raw[0]["episodes"] == 6

    assert main(["spot-eval", "default", "--data", str(raw), "--trials", "1", "--keywords", "1",
                 "--shots", "2", "--words", "4", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["variants"][0]["per_trial"]
