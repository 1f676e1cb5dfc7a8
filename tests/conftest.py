"""Shared fixtures: the real speech of ../shared/data, skipped with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(items):
    """Tests marked ``first`` run before the others (a stable sort keeps the rest in order): in
    ``make test``'s two workers a long test collected last keeps one busy after the other is
    done."""
    items.sort(key=lambda item: item.get_closest_marker("first") is None)


def check_engine_joins_corpus(tmp_path: Path, engine: str, **extra) -> dict:
    """Build a 4-word, 2-voice eSpeak NG corpus, then the same with ``extra`` SynthConfig fields
    adding 3 speakers of ``engine``; assert the earlier clips stay byte for byte, the 12 new clips
    are 1 s at a sane level, and return the second corpus's report.json "synth" section."""
    import json

    import numpy as np
    import soundfile as sf

    from data_prep.synth import SynthConfig, build_synth
    from kws_proto.data.dataset import load_manifest

    cfg = SynthConfig(n_words=4, n_speakers=2, seed=0, noise_seconds=1.0, workers=1)
    build_synth(tmp_path / "espeak", cfg, progress=False)
    build_synth(tmp_path / "both", SynthConfig(**{**cfg.__dict__, **extra}), progress=False)
    plain, both = load_manifest(tmp_path / "espeak"), load_manifest(tmp_path / "both")
    assert len(both) == len(plain) + 4 * 3
    for c in plain.clips:
        assert (tmp_path / "both" / c.path).read_bytes() == (tmp_path / "espeak" / c.path).read_bytes()
    info = json.loads((tmp_path / "both" / "report.json").read_text())["synth"]
    assert f"{engine} executable" in info["backend"]
    ids = {sid for sid, s in info["speakers"].items() if s.get("engine") == engine}
    assert len(ids) == 3
    new = [c for c in both.clips if c.speaker in ids]
    assert len(new) == 12
    for c in new:
        y, _ = sf.read(tmp_path / "both" / c.path, dtype="float32")
        assert y.shape == (16000,) and 10 ** (-13 / 20) < np.abs(y).max() < 1.0
    return info


# Float32 agreement that any CPU keeps: the rounding of a sum, a matmul, an FFT or a log grows
# with the size of the terms, not of the result, so a value near zero (a mean-subtracted
# cepstrum, a difference) carries the rounding of the array's largest values, and another CPU
# (vendor, oneDNN on or off, thread count, aarch64) or another batch size rounds it otherwise
# (1e-6 of the largest |value| seen).  1e-5 of the largest |value| is ~80 float32 ulps of it.
FLOAT32_SCALE = 1e-5


def assert_close_to_scale(actual, desired, rel: float = FLOAT32_SCALE, err_msg: str = ""):
    """``np.testing.assert_allclose`` within ``rel`` times the largest ``|desired|``, everywhere."""
    import numpy as np

    desired = np.asarray(desired)
    np.testing.assert_allclose(actual, desired, rtol=0, atol=rel * float(np.abs(desired).max()),
                               err_msg=err_msg)


def with_train(cfg, **train):
    """``cfg`` with ``train`` fields replaced."""
    import dataclasses

    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def train_run(cfg, run_dir, **kwargs) -> dict:
    """:func:`~kws_proto.train.trainer.train` of ``cfg`` into ``run_dir`` in this process, on its
    dataset built and opened first (as ``kws-proto train`` does), without progress bars."""
    from data_prep.builtin import prepare_data
    from kws_proto.train.trainer import train

    return train(cfg, prepare_data(cfg, progress=False), run_dir, progress=False, **kwargs)


def cli(*args) -> list[str]:
    """The ``kws-proto`` command line ``args`` as a subprocess runs it (this interpreter)."""
    import sys

    return [sys.executable, "-m", "kws_proto.cli", *map(str, args)]


def load_experiment_script(name: str):
    """``experiments/NAME.py`` imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"real speech not available: {path} is absent (set KWS_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    """``../shared/data/fsdd``: 3,000 FSDD digit clips (8 kHz WAV), or skip."""
    return _shared("fsdd")


@pytest.fixture(scope="session")
def picovoice_dir() -> Path:
    """``../shared/data/picovoice``: six wake words (16 kHz FLAC, 14 corrupt), or skip."""
    return _shared("picovoice")


def gse_installed() -> bool:
    """Whether the optional extra ``gse`` (the speech embedding's TFLite files) is installed."""
    from kws_proto.model.gse import GSEUnavailableError, model_dir

    try:
        model_dir()
    except GSEUnavailableError:
        return False
    return True


needs_gse = pytest.mark.skipif(not gse_installed(), reason="the optional extra 'gse' (pyopen-wakeword "
                               "with its TFLite files) is not installed: pip install -e '.[gse]'")


TINY_SYNTH = {"synth_words": 20, "synth_speakers": 10, "synth_seed": 0}


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """A tiny built-in corpus (20 words x 10 eSpeak NG voices, split 16/2/2), built once."""
    from data_prep.synth import SynthConfig, build_synth

    root = tmp_path_factory.mktemp("synth") / "tiny"
    build_synth(root, SynthConfig(n_words=TINY_SYNTH["synth_words"],
                                  n_speakers=TINY_SYNTH["synth_speakers"],
                                  seed=TINY_SYNTH["synth_seed"], noise_seconds=5), progress=False)
    return root


@pytest.fixture
def smoke_config(synth_dataset):
    """``experiments/configs/smoke.yaml`` pointed at the tiny corpus."""
    from kws_proto.config import load_config

    return load_config(REPO / "experiments" / "configs" / "smoke.yaml",
                       overrides={"data": {"dataset": str(synth_dataset), **TINY_SYNTH}})


@pytest.fixture(scope="session")
def trained_run(request, tmp_path_factory) -> Path:
    """A trained run directory for the keyword tools (enrol, classify, detect, export).

    ``$KWS_TEST_MODEL`` (a run directory) when set; else the shipped pretrained encoder
    (``kws_proto/model/pretrained/protores_synth``, the default's trained member) when present; else ``smoke.yaml`` trained here on the tiny
    built-in corpus (~15 s).  :func:`trained_run_kind` tells which.
    """
    kind = _trained_run_kind()
    if kind == "env":
        return Path(os.environ["KWS_TEST_MODEL"])
    if kind == "default":
        from kws_proto.model.pretrained import TRAINED, model_dir

        return model_dir(TRAINED)
    from kws_proto.config import load_config

    synth = request.getfixturevalue("synth_dataset")
    cfg = load_config(REPO / "experiments" / "configs" / "smoke.yaml",
                      overrides={"data": {"dataset": str(synth), **TINY_SYNTH}})
    run_dir = tmp_path_factory.mktemp("trained") / "smoke"
    train_run(cfg, run_dir)
    return run_dir


def _trained_run_kind() -> str:
    if os.environ.get("KWS_TEST_MODEL"):
        return "env"
    from kws_proto.model.pretrained import MODELS_DIR, TRAINED

    shipped = MODELS_DIR / TRAINED
    return "default" if (shipped / "best.weights.h5").is_file() else "smoke"


@pytest.fixture(scope="session")
def trained_run_kind() -> str:
    """``"env"``, ``"default"`` or ``"smoke"``: where :func:`trained_run` comes from."""
    return _trained_run_kind()


@pytest.fixture(scope="session")
def keyword_clips(request) -> dict:
    """Clips of three keywords and of a fourth, unenrolled one, for the keyword tools' tests.

    Real speech when ``../shared/data/picovoice`` is there (computer, jarvis, snowboy; unknown
    "view glass"; 25 clips each, sorted by name, the unknown 40), else the tiny built-in corpus's
    validation and test words, which its smoke encoder never trained on (10 clips each).

    Returns
    -------
    dict
        ``source`` ("picovoice" or "builtin"), ``keywords`` ``{name: [Path]}``, ``unknown``
        ``[Path]``.
    """
    pico = SHARED_DATA / "picovoice"
    if pico.is_dir():
        def first(word, n):
            return sorted((pico / word).glob("*.flac"))[:n]

        return {"source": "picovoice", "unknown": first("view glass", 40),
                "keywords": {w: first(w, 25) for w in ("computer", "jarvis", "snowboy")}}
    from kws_proto.data.dataset import load_manifest, load_splits

    root = request.getfixturevalue("synth_dataset")
    manifest, splits = load_manifest(root), load_splits(root)
    words = list(splits.validation) + list(splits.test)  # 4 words unseen in training
    by_word = {w: sorted(root / c.path for c in manifest.clips if c.keyword == w) for w in words}
    return {"source": "builtin", "unknown": by_word[words[-1]],
            "keywords": {w: by_word[w] for w in words[:3]}}


@pytest.fixture(scope="session")
def keyword_spotter(trained_run):
    """A :class:`~kws_proto.spot.spotter.KeywordSpotter` of :func:`trained_run`, loaded once."""
    from kws_proto.spot.spotter import KeywordSpotter

    return KeywordSpotter.from_model(trained_run)


FIXTURE_CLIPS = Path(__file__).parent / "data"  # six short real clips (tests/data, with their licence)


def fixture_clip_paths() -> list[Path]:
    """The real clips of tests/data, sorted."""
    return sorted(p for p in FIXTURE_CLIPS.rglob("*") if p.suffix in (".wav", ".flac"))


@pytest.fixture(scope="module")
def real_clips():
    """The six real clips of tests/data as the project's encoders see them: 1 s, loudest crop."""
    import numpy as np

    from kws_proto.audio.loading import load_audio

    return np.stack([load_audio(p, 16000, 1.0, "loudest") for p in fixture_clip_paths()])


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    """A prepared folder of the six real clips as six words, three takes each (as recorded,
    at half level, and 50 ms later)."""
    import numpy as np
    import soundfile as sf

    from kws_proto.data.dataset import Clip, write_manifest

    root = tmp_path / "tiny"
    clips = []
    for src in fixture_clip_paths():
        y, sr = sf.read(src, dtype="float32")
        word = src.stem.split("_")[0] if src.parent.name == "fsdd" else src.parent.name
        (root / word).mkdir(parents=True)
        takes = {"a": y, "b": 0.5 * y, "c": np.concatenate([np.zeros(sr // 20, np.float32), y])}
        for take, audio in takes.items():
            sf.write(root / word / f"{take}.wav", audio, sr)
            clips.append(Clip(f"{word}/{take}.wav", word, take, len(audio) / sr, sr))
    write_manifest(root, clips)
    return root
