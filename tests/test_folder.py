"""`kws-prep folder`: mixed rates, formats, lengths, broken files; the real FSDD and Picovoice."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from data_prep.cli import main as prep_main
from data_prep.espeak import Voice, get_synthesizer
from data_prep.folder import index_folder
from kws_proto.data.dataset import load_manifest, load_splits, noise_files
from kws_proto.errors import ConfigError, DatasetError

PICOVOICE_CORRUPT = {f"alexa/{n}.flac" for n in
                     (126, 127, 128, 129, 142, 144, 229, 272, 273, 274, 275, 32, 33, 34)}


def _word(text: str, sr: int) -> np.ndarray:
    synth = get_synthesizer()
    y = synth.synthesize(text, Voice("en-us", "m3", 170, 50), seed=0).astype(np.float32) / 32768.0
    return soxr.resample(y, synth.sample_rate, sr).astype(np.float32)  # [n]


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """Recordings at 8, 16, 22.05 and 44.1 kHz, in WAV, FLAC and OGG, 0.3 s to 3 s, plus junk."""
    root = tmp_path_factory.mktemp("folder") / "src"
    (root / "lantern").mkdir(parents=True)
    (root / "blue whale" / "take 2").mkdir(parents=True)
    sf.write(root / "lantern" / "a.wav", _word("lantern", 8000), 8000)
    sf.write(root / "lantern" / "a.flac", _word("lantern", 44100), 44100)  # same stem as a.wav
    sf.write(root / "lantern" / "b.ogg", _word("lantern", 22050), 22050)
    rng = np.random.default_rng(0)
    long = (0.003 * rng.standard_normal(3 * 16000)).astype(np.float32)  # 3 s of faint noise
    w = _word("blue whale", 16000)[:12000]
    long[24000 : 24000 + w.shape[0]] += w  # the word at 1.5 s
    sf.write(root / "blue whale" / "long.flac", long, 16000)
    sf.write(root / "blue whale" / "take 2" / "blue whale_ann_3.wav", _word("blue whale", 16000), 16000)
    sf.write(root / "7_bob_0.wav", _word("seven", 8000), 8000)  # FSDD-style flat file
    (root / "lantern" / "broken.flac").write_bytes(b"fLaC\x00\x00\x00\x22" + bytes(40))
    sf.write(root / "lantern" / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (root / "lantern" / "notes.txt").write_text("not audio")
    (root / "stray_recording.wav").write_bytes((root / "lantern" / "a.wav").read_bytes())
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "hum.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    return root


@pytest.fixture(scope="module")
def converted(src, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "ds"
    index_folder(src, out, progress=False, workers=1)
    return out


def test_keywords_speakers_and_original_rates(converted, src):
    m = load_manifest(converted)
    assert m.keywords == ["7", "blue whale", "lantern"]
    rows = {c.path: c for c in m.clips}
    assert rows["7/7_bob_0.wav"].speaker == "bob"
    assert rows["blue whale/take 2/blue whale_ann_3.wav"].speaker == "ann"
    assert rows["blue whale/long.wav"].speaker == ""
    rates = {p: c.sample_rate for p, c in rows.items()}
    assert rates["lantern/a.wav"] == 8000 and rates["lantern/a.flac.wav"] == 44100
    assert rates["lantern/b.wav"] == 22050
    assert rows["blue whale/long.wav"].duration == pytest.approx(3.0, abs=1e-3)
    assert rows["lantern/a.wav"].duration == pytest.approx(sf.info(src / "lantern" / "a.wav").duration, abs=1e-3)
    for c in m.clips:  # every stored clip: 16 kHz WAV, at most one second
        info = sf.info(converted / c.path)
        assert info.samplerate == 16000 and info.frames <= 16000 and info.format == "WAV"
    assert [p.name for p in noise_files(converted)] == ["hum.wav"]
    assert load_splits(converted).test == ("7", "blue whale", "lantern")


def test_long_recording_keeps_its_loudest_second(converted):
    y, sr = sf.read(converted / "blue whale" / "long.wav")
    assert y.shape == (16000,)
    word = _word("blue whale", 16000)[:12000]
    assert np.sum(y**2) > 0.9 * np.sum(word**2)  # the word is inside, not just the faint noise


def test_broken_files_are_reported_and_the_rest_kept(converted):
    report = json.loads((converted / "report.json").read_text())
    assert {s["path"] for s in report["skipped"]} == {"lantern/broken.flac", "lantern/empty.wav"}
    assert any("empty" in s["reason"] for s in report["skipped"])
    assert {s["path"] for s in report["ignored"]} == {"lantern/notes.txt", "stray_recording.wav"}
    assert report["counts"]["kept"] == len(load_manifest(converted)) == 6


def test_strict_names_the_broken_files(src, tmp_path):
    with pytest.raises(DatasetError, match="broken.flac"):
        index_folder(src, tmp_path / "o", strict=True, progress=False, workers=1)


@pytest.mark.parametrize("mode", ["copy", "link", "symlink"])
def test_copy_link_and_symlink_keep_the_original_files(src, tmp_path, mode):
    out = tmp_path / mode
    r = index_folder(src, out, mode=mode, progress=False, workers=1)
    assert len(r.clips) == 6
    a = out / "lantern" / "a.flac"
    assert a.read_bytes() == (src / "lantern" / "a.flac").read_bytes()
    if mode == "link":
        assert os.stat(a).st_ino == os.stat(src / "lantern" / "a.flac").st_ino
    assert a.is_symlink() == (mode == "symlink")
    assert r.report["audio"] == mode


def test_bad_arguments_are_clear_errors(src, tmp_path):
    with pytest.raises(ConfigError, match="inside"):
        index_folder(src, src / "out", progress=False)
    with pytest.raises(ConfigError, match="no such folder"):
        index_folder(tmp_path / "missing", tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="mode"):
        index_folder(src, tmp_path / "o", mode="move", progress=False)


@pytest.mark.shared
def test_fsdd_indexes_cleanly(fsdd_dir, tmp_path, capsys):
    assert prep_main(["folder", str(fsdd_dir), str(tmp_path / "fsdd"), "--audio", "symlink", "--quiet"]) == 0
    assert re.search(r"indexed 3000 of 3000 clips \(10 keywords, 6 speakers\)", capsys.readouterr().out)
    m = load_manifest(tmp_path / "fsdd")
    names = sorted(p.name for p in fsdd_dir.glob("*.wav"))
    assert sorted(Path(c.path).name for c in m.clips) == names
    for c in m.clips:
        label, speaker, _ = Path(c.path).stem.split("_")
        assert (c.keyword, c.speaker, c.sample_rate) == (label, speaker, 8000)
    assert json.loads((tmp_path / "fsdd" / "report.json").read_text())["skipped"] == []


@pytest.mark.shared
def test_picovoice_reports_exactly_its_14_corrupt_files(picovoice_dir, tmp_path):
    r = index_folder(picovoice_dir, tmp_path / "pico", mode="symlink", progress=False)
    assert {s.path for s in r.skipped} == PICOVOICE_CORRUPT
    on_disk = {p.relative_to(picovoice_dir).as_posix() for p in picovoice_dir.glob("*/*.flac")}
    assert {Path(c.path).relative_to(".").as_posix() for c in r.clips} == on_disk - PICOVOICE_CORRUPT
    assert [s.path for s in r.ignored] == ["multiple_keywords.flac"]
    assert load_manifest(tmp_path / "pico").keywords == ["alexa", "computer", "jarvis", "smart mirror",
                                                         "snowboy", "view glass"]
