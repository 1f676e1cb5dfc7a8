"""The built-in eSpeak NG corpus: layout, counts, speakers, reproducibility (real eSpeak NG)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.cli import main as prep_main
from data_prep.espeak import Voice, get_synthesizer
from data_prep.noise import colored_noise
from data_prep.sc_layout import which_set
from data_prep.speakers import draw_speakers, speaker_id
from data_prep.synth import SynthConfig, build_synth, trim_silence
from data_prep.words import (
    DEFAULT_WORDS, DIGITS, PICOVOICE_WORDS, SPEECH_COMMANDS_V2, check_words, load_words_file,
)
from kws_proto.data.dataset import load_manifest, load_splits, noise_files
from kws_proto.errors import ConfigError, KwsError

TINY = SynthConfig(n_words=4, n_speakers=3, seed=7, noise_seconds=1.0)
SC_NAME = re.compile(r"^[0-9a-f]{8}_nohash_0\.wav$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    build_synth(out, TINY, progress=False)
    return out


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes but report.json (it records timings)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "report.json"}


def test_default_vocabulary_is_large_and_keeps_test_keywords_unseen():
    words = check_words(DEFAULT_WORDS)
    assert len(set(words)) >= 150
    banned = set(SPEECH_COMMANDS_V2) | set(DIGITS) | set(PICOVOICE_WORDS)
    banned |= {w for phrase in PICOVOICE_WORDS for w in phrase.split()}
    assert not banned & set(words)
    assert len(SPEECH_COMMANDS_V2) == 35 and len(set(SPEECH_COMMANDS_V2)) == 35
    lengths = {len(w) for w in words}
    assert min(lengths) <= 4 and max(lengths) >= 9  # varied length


@pytest.mark.parametrize("bad", ["yes", "Seven", "view", "smart mirror", "know", "../up", "_x", "apple\napple"])
def test_excluded_or_unsafe_words_are_refused(bad):
    with pytest.raises(ConfigError):
        check_words(bad.split("\n"))


def test_words_file_reading(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("# my words\nLantern\n\n  walrus  # a comment\n", encoding="utf-8")
    assert load_words_file(f) == ["lantern", "walrus"]
    f.write_text("lantern\nstop\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="stop"):
        load_words_file(f)
    with pytest.raises(ConfigError, match="no such file"):
        load_words_file(tmp_path / "missing.txt")


def test_layout_and_counts(tiny):
    manifest = load_manifest(tiny)
    report = json.loads((tiny / "report.json").read_text())
    words = report["synth"]["words"]
    assert len(words) == 4 and len(manifest) == 4 * 3
    assert manifest.keywords == sorted(words)
    for w in words:
        files = sorted(p.name for p in (tiny / w).iterdir())
        assert len(files) == 3 and all(SC_NAME.match(f) for f in files)
    assert {c.speaker for c in manifest.clips} == set(report["synth"]["speakers"])
    for c in manifest.clips:
        assert c.path == f"{c.keyword}/{c.speaker}_nohash_0.wav"
        y, sr = sf.read(tiny / c.path)
        assert sr == 16000 and y.shape == (16000,) and c.duration == pytest.approx(1.0)
        assert np.max(np.abs(y)) > 0.05  # a word, not silence
    names = {p.name for p in noise_files(tiny)}
    assert {"white_noise.wav", "pink_noise.wav", "brown_noise.wav", "hum.wav", "babble.wav"} <= names
    assert all(sf.info(p).duration == pytest.approx(1.0) for p in noise_files(tiny))
    splits = load_splits(tiny)
    assert sorted(splits.train + splits.validation + splits.test + splits.unknown) == sorted(words)


def test_speaker_id_is_a_hash_of_the_voice_setting(tiny):
    speakers = json.loads((tiny / "report.json").read_text())["synth"]["speakers"]
    for sid, s in speakers.items():
        key = f"{s['accent']}|{s['variant']}|{s['rate']}|{s['pitch']}"
        assert sid == hashlib.sha1(key.encode()).hexdigest()[:8]


def test_split_lists_keep_each_speaker_in_one_list(tiny):
    val = (tiny / "validation_list.txt").read_text().split()
    test = (tiny / "testing_list.txt").read_text().split()
    assert not set(val) & set(test)
    for rel in val:
        assert which_set(rel) == "validation"
    for rel in test:
        assert which_set(rel) == "testing"
    for c in load_manifest(tiny).clips:  # every clip of a speaker lands in the same list
        assert which_set(c.path) == which_set(f"other/{c.speaker}_nohash_3.wav")


def test_words_sit_at_varied_offsets(tiny):
    onsets = []
    for c in load_manifest(tiny).clips:
        y, _ = sf.read(tiny / c.path)
        onsets.append(int(np.flatnonzero(np.abs(y) > 0.01)[0]))
    assert len(set(onsets)) >= 6


def test_same_seed_same_corpus_other_seed_other_corpus(tiny, tmp_path):
    again = tmp_path / "again"
    build_synth(again, TINY, progress=False)
    assert _files(again) == _files(tiny)
    other = tmp_path / "other"
    build_synth(other, SynthConfig(n_words=4, n_speakers=3, seed=8, noise_seconds=1.0), progress=False)
    assert (other / "manifest.csv").read_bytes() != (tiny / "manifest.csv").read_bytes()


def test_worker_count_does_not_change_the_corpus(tmp_path):
    cfg = SynthConfig(n_words=6, n_speakers=6, seed=3, noise_seconds=0.5, workers=1)
    build_synth(tmp_path / "one", cfg, progress=False)
    get_synthesizer().synthesize("the caller speaks too", Voice("en-us", "f3"))  # must not matter
    report = build_synth(tmp_path / "two", replace(cfg, workers=2), progress=False).report
    assert report["synth"]["workers"] == 2
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_words_too_long_for_a_second_are_sped_up_or_dropped_and_counted(tmp_path):
    words = tmp_path / "w.txt"
    words.write_text("lantern\ninternationalization characteristically incomprehensible\n")
    result = build_synth(tmp_path / "c", SynthConfig(n_words=None, n_speakers=4, seed=1, noise_seconds=0.5,
                                                     words=tuple(load_words_file(words))), progress=False)
    info = result.report["synth"]
    assert info["clips_written"] + len(info["dropped"]) == 2 * 4
    assert info["sped_up"] + len(info["dropped"]) >= 1
    assert len(result.clips) == info["clips_written"]
    assert all(c.duration == pytest.approx(1.0) for c in result.clips)


def test_trim_silence_cuts_only_silence():
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / sr)
    y = np.concatenate([np.zeros(8000), tone, np.zeros(8000)])
    t = trim_silence(y, sr, margin=0.0)
    assert 3800 <= t.shape[0] <= 4200
    assert np.max(np.abs(t)) == pytest.approx(0.5, abs=1e-3)
    assert trim_silence(np.zeros(1600), sr).shape[0] == 0


def test_espeak_voices_differ_and_speakers_are_distinct():
    synth = get_synthesizer()
    a = synth.synthesize("lantern", Voice("en-us", "m3", 175, 50))
    b = synth.synthesize("lantern", Voice("en-gb-scotland", "f2", 175, 50))
    assert a.dtype == np.int16 and a.size > 0.2 * synth.sample_rate
    assert a.shape != b.shape or not np.array_equal(a, b)
    voices = draw_speakers(400, seed=0)
    assert len({speaker_id(v) for v in voices}) == 400
    assert draw_speakers(5, seed=1) == draw_speakers(5, seed=1) != draw_speakers(5, seed=2)
    with pytest.raises(ConfigError, match="voice"):
        synth.synthesize("lantern", Voice("en-us", "no-such-variant"))


def test_missing_executable_backend_is_a_clear_error():
    if shutil.which("espeak-ng"):
        pytest.skip("a system espeak-ng is installed")
    with pytest.raises(KwsError, match="espeak"):
        get_synthesizer("executable")


def test_cli_synth_reports_size_and_time(tmp_path, capsys):
    words = tmp_path / "w.txt"
    words.write_text("lantern\nwalrus\nmeadow\n")
    rc = prep_main(["synth", str(tmp_path / "c"), "--words-file", str(words), "--speakers", "2",
                    "--noise-seconds", "0.5", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"wrote 6 clips \(3 words x 2 speakers\) .* in \d+\.\d s", out)
    assert load_manifest(tmp_path / "c").keywords == ["lantern", "meadow", "walrus"]
    rc = prep_main(["synth", str(tmp_path / "d"), "--words-file", str(tmp_path / "nope.txt")])
    assert rc == 2 and "nope.txt" in capsys.readouterr().err


def test_an_existing_folder_is_replaced_only_on_request(tiny, tmp_path):
    out = tmp_path / "c"
    (out / "old word").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not empty"):
        build_synth(out, TINY, progress=False)
    with pytest.raises(ConfigError, match="not empty"):  # not a dataset folder: never deleted
        build_synth(out, TINY, progress=False, overwrite=True)
    assert (out / "old word").is_dir()
    (out / ".incomplete").write_text("")  # as left by an interrupted build: replaced
    build_synth(out, SynthConfig(n_words=3, n_speakers=2, seed=1, noise_seconds=0.5), progress=False)
    assert not (out / "old word").exists() and not (out / ".incomplete").exists()
    build_synth(out, TINY, progress=False, overwrite=True)
    assert _files(out) == _files(tiny)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_generated_noise_has_its_spectral_slope(exponent):
    y = colored_noise(2**16, exponent, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(y)) ** 2  # [2**15 + 1]
    f = np.arange(power.shape[0])
    bands = np.unique(np.geomspace(16, f[-1], 20).astype(int))
    band_power = [power[lo:hi].mean() for lo, hi in zip(bands[:-1], bands[1:])]
    centres = np.sqrt(bands[:-1] * bands[1:])
    slope = np.polyfit(np.log(centres), np.log(band_power), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.15)
    assert np.sqrt(np.mean(y**2)) == pytest.approx(1.0)
