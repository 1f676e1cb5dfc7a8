"""Speech Commands: checksum, safe extraction, indexing and protocols on a small archive made here."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from data_prep.archive import ARCHIVES, safe_extract
from data_prep.cli import main as prep_main
from data_prep.espeak import Voice, get_synthesizer
from data_prep.sc_layout import parse_clip_name, which_set
from data_prep.speech_commands import prepare_speech_commands
from data_prep.words import CORE_WORDS
from kws_proto.data.dataset import load_manifest, load_splits, noise_files
from kws_proto.errors import DatasetError

OTHER = ("bed", "bird", "cat", "dog")  # 3 speakers each, like the core words
RARE = ("happy", "wow")  # one speaker each
SPEAKERS = {"0a1b2c3d": Voice("en-us", "m3", 160, 50), "4e5f6a7b": Voice("en-gb", "f2", 180, 60),
            "8c9d0e1f": Voice("en-029", "m1", 200, 40)}
CORRUPT = "cat/deadbeef_nohash_0.wav"


def _word_clip(word: str, voice: Voice) -> np.ndarray:
    synth = get_synthesizer()
    y = synth.synthesize(word, voice, seed=0).astype(np.float32) / 32768.0
    y = soxr.resample(y, synth.sample_rate, 16000)[:16000]
    return np.pad(y, (0, 16000 - y.shape[0]))  # [16000]


def _write(path: Path, y: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, 16000, subtype="PCM_16")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A miniature Speech Commands tree with every naming quirk and one corrupt clip."""
    root = tmp_path_factory.mktemp("sc") / "tree"
    for word in CORE_WORDS + OTHER:
        for spk, voice in SPEAKERS.items():
            _write(root / word / f"{spk}_nohash_0.wav", _word_clip(word, voice))
    _write(root / "yes" / "0a1b2c3d_nohash_1.wav", _word_clip("yes", Voice("en-us", "m3", 140, 50)))
    for word in RARE:
        _write(root / word / "0a1b2c3d_nohash_0.wav", _word_clip(word, SPEAKERS["0a1b2c3d"]))
    _write(root / "_unknown_" / "marvin_99aa88bb_nohash_0.wav", _word_clip("marvin", SPEAKERS["8c9d0e1f"]))
    _write(root / "_unknown_" / "sheila_99aa88bb_nohash_2.wav.wav", _word_clip("sheila", SPEAKERS["8c9d0e1f"]))
    (root / CORRUPT).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage, not audio")
    rng = np.random.default_rng(0)
    _write(root / "_background_noise_" / "white_noise.wav", (0.1 * rng.standard_normal(32000)).astype(np.float32))
    (root / "validation_list.txt").write_text("bed/0a1b2c3d_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("bird/4e5f6a7b_nohash_0.wav\n")
    (root / "LICENSE").write_text("CC BY 4.0\n")
    return root


def _tar(path: Path, root: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(root, arcname=".")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def archive(corpus, tmp_path_factory) -> Path:
    return _tar(tmp_path_factory.mktemp("arc") / "speech_commands_v0.02.tar.gz", corpus)


@pytest.fixture(scope="module")
def prepared(archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "sc"
    prepare_speech_commands(out, 2, archive=archive, sha256=_sha(archive), progress=False, workers=1)
    return out


def _clip_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav")
                  if not p.relative_to(root).as_posix().startswith("_background_noise_"))


def test_index_keeps_every_readable_clip_with_its_speaker(prepared, corpus):
    manifest = load_manifest(prepared)
    expected = [f for f in _clip_files(corpus) if f != CORRUPT]
    assert sorted(c.path for c in manifest.clips) == expected
    by_path = {c.path: c for c in manifest.clips}
    assert by_path["yes/0a1b2c3d_nohash_1.wav"].speaker == "0a1b2c3d"
    assert (by_path["_unknown_/marvin_99aa88bb_nohash_0.wav"].keyword,
            by_path["_unknown_/marvin_99aa88bb_nohash_0.wav"].speaker) == ("marvin", "99aa88bb")
    assert by_path["_unknown_/sheila_99aa88bb_nohash_2.wav.wav"].keyword == "sheila"
    assert all(c.sample_rate == 16000 and c.duration == pytest.approx(1.0) for c in manifest.clips)
    assert set(manifest.keywords) == set(CORE_WORDS + OTHER + RARE) | {"marvin", "sheila"}
    assert [p.name for p in noise_files(prepared)] == ["white_noise.wav"]
    assert (prepared / "validation_list.txt").read_text() == "bed/0a1b2c3d_nohash_0.wav\n"


def test_corrupt_clip_is_named_counted_and_skipped(prepared):
    report = json.loads((prepared / "report.json").read_text())
    assert [s["path"] for s in report["skipped"]] == [CORRUPT]
    assert report["counts"]["skipped"] == 1
    assert report["counts"]["kept"] == len(load_manifest(prepared))
    assert report["archive"]["file"] == "speech_commands_v0.02.tar.gz"


def test_strict_turns_the_corrupt_clip_into_a_failure(archive, tmp_path):
    with pytest.raises(DatasetError, match=CORRUPT):
        prepare_speech_commands(tmp_path / "o", 2, archive=archive, sha256=_sha(archive), strict=True,
                                progress=False, workers=1)
    assert not (tmp_path / "o" / "manifest.csv").exists()


def test_core_protocol_tests_on_the_ten_command_words(prepared):
    s = load_splits(prepared)
    assert s.protocol == "core" and sorted(s.test) == sorted(CORE_WORDS)
    assert not set(s.train) & set(CORE_WORDS) and not set(s.validation) & set(CORE_WORDS)
    assert sorted(s.train + s.validation) == sorted(set(load_manifest(prepared).keywords) - set(CORE_WORDS))


def test_parnami_protocol_through_the_cli(prepared, tmp_path, capsys):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(prepared, d)
    assert prep_main(["split", str(d), "--protocol", "parnami", "--min-speakers", "3", "--seed", "1"]) == 0
    s = load_splits(d)
    good = set(CORE_WORDS + OTHER)  # the words with >= 3 speakers
    assert (len(s.test), len(s.validation), len(s.train)) == (5, 5, len(good) - 10)
    assert set(s.train + s.validation + s.test) == good
    assert set(s.unknown) == set(RARE) | {"marvin", "sheila"}
    assert "parnami split" in capsys.readouterr().out


def test_one_clip_per_speaker_keeps_the_first_take(archive, tmp_path):
    r = prepare_speech_commands(tmp_path / "o", 2, archive=archive, sha256=_sha(archive), progress=False,
                                one_per_speaker=True, protocol="none", workers=1)
    yes = sorted(c.path for c in r.clips if c.keyword == "yes")
    assert yes == [f"yes/{s}_nohash_0.wav" for s in sorted(SPEAKERS)]
    assert r.report["extra_takes_dropped"] == 1


def test_corrupted_archive_fails_the_checksum(archive, tmp_path):
    bad = tmp_path / "bad.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="checksum failed: sha256"):
        prepare_speech_commands(tmp_path / "o", 2, archive=bad, sha256=_sha(archive), progress=False)
    assert not (tmp_path / "o" / "yes").exists()


def test_published_checksums_apply_without_sha256(archive, tmp_path, capsys):
    rc = prep_main(["speech-commands", str(tmp_path / "o"), "--archive", str(archive), "--quiet"])
    assert rc == 2
    assert f"expected {ARCHIVES[2].size}" in capsys.readouterr().err
    assert ARCHIVES[1].sha256 != ARCHIVES[2].sha256 and all(len(a.sha256) == 64 for a in ARCHIVES.values())


def _evil(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("yes/aaaa0000_nohash_0.wav")
        ok.size = 4
        tar.addfile(ok, io.BytesIO(b"RIFF"))
        if kind == "symlink":
            bad = tarfile.TarInfo("yes/link.wav")
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(bad)
        else:
            bad = tarfile.TarInfo({"dotdot": "../evil.wav", "absolute": "/tmp/kws_evil_abs.wav",
                                   "nested": "yes/../../evil.wav"}[kind])
            bad.size = 4
            tar.addfile(bad, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "nested", "symlink"])
def test_path_traversal_members_are_refused(tmp_path, kind):
    arc = _evil(tmp_path / "evil.tar.gz", kind)
    out = tmp_path / "deep" / "out"
    with pytest.raises(DatasetError, match="refused archive member"):
        prepare_speech_commands(out, 2, archive=arc, sha256=_sha(arc), progress=False)
    assert not (tmp_path / "deep" / "evil.wav").exists() and not (tmp_path / "evil.wav").exists()
    assert not Path("/tmp/kws_evil_abs.wav").exists()
    assert not (out / "yes" / "link.wav").exists()


def test_extraction_through_a_planted_symlink_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "yes").symlink_to(outside, target_is_directory=True)
    arc = _evil(tmp_path / "a.tar.gz", "dotdot")
    with pytest.raises(DatasetError, match="resolves outside"):
        safe_extract(arc, out, progress=False)
    assert list(outside.iterdir()) == []


def test_no_network_fails_at_once_and_says_to_pass_archive(tmp_path, capsys):
    rc = prep_main(["speech-commands", str(tmp_path / "o"), "--url", "http://127.0.0.1:9/sc.tar.gz",
                    "--timeout", "2", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--archive" in err and "127.0.0.1" in err
    assert not list((tmp_path / "o").glob("*.part"))


@pytest.mark.parametrize("folder, name, expected", [
    ("yes", "0a7c2a8d_nohash_1.wav", ("yes", "0a7c2a8d")),
    ("_unknown_", "bed_0c40e715_nohash_0.wav.wav", ("bed", "0c40e715")),
    ("_unknown_", "two_words_0c40e715_nohash_3.wav", ("two_words", "0c40e715")),
    ("left", "no_hash_here.wav", ("left", "")),
])
def test_clip_names(folder, name, expected):
    assert parse_clip_name(folder, name) == expected


def test_which_set_depends_on_the_speaker_only_and_spreads():
    assert which_set("yes/abcd1234_nohash_0.wav") == which_set("no/abcd1234_nohash_7.wav.wav")
    sets = [which_set(f"w/{i:08x}_nohash_0.wav") for i in range(2000)]
    share = {s: sets.count(s) / len(sets) for s in ("training", "validation", "testing")}
    assert 0.07 < share["validation"] < 0.13 and 0.07 < share["testing"] < 0.13
