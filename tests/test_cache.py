"""kws_proto.data.cache: built once, reused, invalidated by config and manifest, never half-written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_proto.audio.loading import load_audio
from kws_proto.data.cache import (
    cache_files,
    feature_cache,
    manifest_fingerprint,
    to_float32,
    waveform_cache,
)
from kws_proto.data.dataset import Clip, load_manifest, write_manifest
from kws_proto.errors import DatasetError
from kws_proto.audio.features import FeatureConfig, mfcc

from conftest import assert_close_to_scale

DATA = Path(__file__).parent / "data"
CONFIG = FeatureConfig()


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A prepared folder: the real clips of tests/data (8 and 16 kHz) plus two tones."""
    root = tmp_path / "ds"
    clips = []
    for src in sorted(DATA.rglob("*")):
        if src.suffix not in (".wav", ".flac"):
            continue
        y, sr = sf.read(src, dtype="float32")
        keyword = src.parent.name if src.parent.name != "fsdd" else src.stem.split("_")[0]
        (root / keyword).mkdir(parents=True, exist_ok=True)
        sf.write(root / keyword / f"{src.stem}.wav", y, sr)
        clips.append(Clip(f"{keyword}/{src.stem}.wav", keyword, "", len(y) / sr, sr))
    (root / "tone").mkdir()
    for freq in (300, 2000):
        t = np.arange(12000) / 16000
        sf.write(root / "tone" / f"{freq}.wav", 0.3 * np.sin(2 * np.pi * freq * t), 16000)
        clips.append(Clip(f"tone/{freq}.wav", "tone", "", 0.75, 16000))
    write_manifest(root, clips)
    return root


# Rows recomputed in another batch: the batched matmuls may round differently (thread count,
# blocking), so they agree to float32 rounding rather than bit for bit: within 1e-5 of the
# largest |MFCC| (~400), since a centred coefficient near 0 carries the rounding of the large
# ones (rtol=1e-5, atol=1e-4 failed that way on another CPU)
RECOMPUTED = assert_close_to_scale

def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def _leftovers(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.glob(".*tmp*"))


def test_build_computes_librosa_features_of_every_row(dataset):
    manifest = load_manifest(dataset)
    feats = feature_cache(manifest, CONFIG, progress=False, batch_size=3)
    assert isinstance(feats, np.memmap) and not feats.flags.writeable
    assert feats.shape == (len(manifest), 51, 40) and feats.dtype == np.float32
    for row, path in zip(feats, manifest.paths()):
        ref = mfcc(load_audio(path, 16000, 1.0, "loudest"), CONFIG)
        assert np.max(np.abs(row - ref)) <= 5e-3, path  # TF against librosa: test_features.TOLERANCE
    array_path, meta_path = cache_files(manifest, "mfcc", CONFIG.digest)
    assert array_path == dataset / ".cache" / f"mfcc-{CONFIG.digest}.npy"
    meta = json.loads(meta_path.read_text())
    assert meta["key"]["config"] == CONFIG.to_dict()
    assert meta["manifest"] == manifest_fingerprint(manifest)
    assert _leftovers(dataset / ".cache") == []


def test_second_call_reuses_the_files(dataset):
    manifest = load_manifest(dataset)
    first = np.array(feature_cache(manifest, CONFIG, progress=False))
    array_path, meta_path = cache_files(manifest, "mfcc", CONFIG.digest)
    before = _stat(array_path), _stat(meta_path)
    again = feature_cache(load_manifest(dataset), CONFIG, progress=False)
    assert (_stat(array_path), _stat(meta_path)) == before
    np.testing.assert_array_equal(again, first)


def test_other_config_gets_its_own_cache(dataset):
    manifest = load_manifest(dataset)
    feature_cache(manifest, CONFIG, progress=False)
    default_files = cache_files(manifest, "mfcc", CONFIG.digest)
    before = [_stat(p) for p in default_files]
    other = FeatureConfig(n_mfcc=13, hop_ms=10.0)
    feats = feature_cache(manifest, other, progress=False)
    assert feats.shape == (len(manifest), 101, 13)
    assert all(p.is_file() for p in cache_files(manifest, "mfcc", other.digest))
    feature_cache(manifest, CONFIG, progress=False)
    assert [_stat(p) for p in default_files] == before


def test_changed_manifest_rebuilds(dataset):
    manifest = load_manifest(dataset)
    full = np.array(feature_cache(manifest, CONFIG, progress=False))
    array_path, _ = cache_files(manifest, "mfcc", CONFIG.digest)
    inode = array_path.stat().st_ino
    write_manifest(dataset, manifest.clips[1:])  # drop the first row
    shorter = feature_cache(load_manifest(dataset), CONFIG, progress=False)
    assert array_path.stat().st_ino != inode
    assert shorter.shape[0] == len(manifest) - 1
    RECOMPUTED(shorter, full[1:])


def test_same_sized_manifest_pointing_elsewhere_rebuilds(dataset):
    manifest = load_manifest(dataset)
    full = np.array(feature_cache(manifest, CONFIG, progress=False))
    rows = [c.path for c in manifest.clips]
    first, last = manifest.clips[0], manifest.clips[-1]
    shutil.copy(dataset / last.path, dataset / first.path)  # row 0 now holds row -1's audio
    renamed = Clip(first.path.replace(".wav", "_v2.wav"), first.keyword, "", last.duration,
                   last.sample_rate)
    (dataset / first.path).rename(dataset / renamed.path)
    write_manifest(dataset, [renamed] + manifest.clips[1:])
    changed = load_manifest(dataset)
    assert len(changed) == len(manifest)
    feats = feature_cache(changed, CONFIG, progress=False)
    row = [c.path for c in changed.clips].index(renamed.path)
    RECOMPUTED(feats[row], full[rows.index(last.path)])


def test_missing_file_fails_naming_it_and_leaves_no_usable_cache(dataset):
    manifest = load_manifest(dataset)
    feature_cache(manifest, CONFIG, progress=False)  # a valid cache of the original manifest
    victim = manifest.paths()[-2]
    extra = Clip("tone/late.wav", "tone", "", 1.0, 16000)
    write_manifest(dataset, manifest.clips + [extra])  # lists a file that is not there
    stale = load_manifest(dataset)
    for _ in range(2):  # a failed build is not mistaken for a finished one on the next call
        with pytest.raises(DatasetError, match="late.wav"):
            feature_cache(stale, CONFIG, progress=False, batch_size=4)
    cache_dir = dataset / ".cache"
    assert _leftovers(cache_dir) == []
    assert not cache_files(stale, "mfcc", CONFIG.digest)[1].exists()  # no sidecar, no cache

    shutil.copy(victim, dataset / "tone" / "late.wav")
    mended = load_manifest(dataset)
    feats = feature_cache(mended, CONFIG, progress=False)
    rows = [c.path for c in mended.clips]
    copy, original = rows.index("tone/late.wav"), rows.index(victim.relative_to(dataset).as_posix())
    RECOMPUTED(feats[copy], feats[original])  # same audio, same features


def test_corrupt_file_fails_naming_it(dataset):
    manifest = load_manifest(dataset)
    bad = manifest.paths()[0]
    bad.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(DatasetError, match=bad.name):
        waveform_cache(manifest, CONFIG, progress=False)
    assert _leftovers(dataset / ".cache") == []


@pytest.mark.parametrize(
    "damage", ["delete_sidecar", "garble_sidecar", "old_frontend_version", "truncate_array"])
def test_damaged_cache_is_rebuilt(dataset, damage):
    manifest = load_manifest(dataset)
    good = np.array(feature_cache(manifest, CONFIG, progress=False))
    array_path, meta_path = cache_files(manifest, "mfcc", CONFIG.digest)
    if damage == "delete_sidecar":  # as after a kill between the rename and the sidecar
        meta_path.unlink()
    elif damage == "garble_sidecar":
        meta_path.write_text("{not json")
    elif damage == "old_frontend_version":  # the feature code changed since the build
        meta = json.loads(meta_path.read_text())
        meta["key"]["frontend_version"] -= 1
        meta_path.write_text(json.dumps(meta))
    else:
        with open(array_path, "r+b") as f:
            f.truncate(array_path.stat().st_size // 2)
    inode = array_path.stat().st_ino
    again = feature_cache(manifest, CONFIG, progress=False)
    assert array_path.stat().st_ino != inode
    np.testing.assert_array_equal(again, good)


def test_waveform_cache_float32_and_int16(dataset):
    manifest = load_manifest(dataset)
    waves = waveform_cache(manifest, CONFIG, progress=False, batch_size=5)
    assert isinstance(waves, np.memmap) and waves.shape == (len(manifest), 16000)
    for row, path in zip(waves, manifest.paths()):
        np.testing.assert_array_equal(row, load_audio(path, 16000, 1.0, "loudest"))
    ints = waveform_cache(manifest, CONFIG, progress=False, dtype="int16")
    assert ints.dtype == np.int16
    np.testing.assert_allclose(to_float32(ints), waves, atol=1.0 / 32768)
    native = manifest.clips.index(next(c for c in manifest.clips if c.sample_rate == 16000))
    assert np.max(np.abs(to_float32(ints[native]) - waves[native])) == 0.0  # 16-bit round trip


def test_waveform_cache_is_keyed_by_rate_length_and_crop_only(dataset):
    manifest = load_manifest(dataset)
    waveform_cache(manifest, CONFIG, progress=False)
    files = sorted((dataset / ".cache").glob("wave-*.npy"))
    before = [_stat(p) for p in files]
    waveform_cache(manifest, FeatureConfig(n_mfcc=13, hop_ms=10.0), progress=False)
    assert [_stat(p) for p in sorted((dataset / ".cache").glob("wave-*.npy"))] == before
    for other in (FeatureConfig(crop="start"), FeatureConfig(clip_seconds=0.5),
                  FeatureConfig(sample_rate=8000, fmax=3800.0)):
        waves = waveform_cache(manifest, other, progress=False)
        assert waves.shape == (len(manifest), other.num_samples)
    assert len(list((dataset / ".cache").glob("wave-*.npy"))) == 4


def test_cache_dir_argument_and_progress_bar(dataset, tmp_path, capsys):
    manifest = load_manifest(dataset)
    elsewhere = tmp_path / "elsewhere"
    feature_cache(manifest, CONFIG, cache_dir=elsewhere, progress=True)
    assert (elsewhere / f"mfcc-{CONFIG.digest}.npy").is_file()
    assert not (dataset / ".cache").exists()
    assert f"{len(manifest)}/{len(manifest)}" in capsys.readouterr().err
