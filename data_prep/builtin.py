"""The built-in corpus on demand: a config's dataset folder, synthesised when it is missing, then
opened through the config's front end.

Training and evaluation reach their data through here, so the core's data layer
(:mod:`kws_proto.data`) knows the prepared-folder contract only and never the synthesiser.
"""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.synth import SynthConfig, build_synth
from data_prep.words import load_words_file
from kws_proto.config import DataConfig, ExperimentConfig
from kws_proto.data.experiment import ExperimentData, open_data
from kws_proto.errors import DatasetError
from kws_proto.util.atomic import exclusive_lock


def ensure_dataset(data: DataConfig, progress: bool = True) -> Path:
    """The dataset folder of ``data``, synthesising the built-in corpus first when asked and missing.

    A synthesised folder remembers its settings (``report.json``); asking for other settings in
    the same folder is a :class:`DatasetError` rather than a silent reuse.  Processes asking for
    the same missing folder at once (the workers of one run) build it once: the first holds a
    lock (``.<folder>.lock`` beside it) while it synthesises, the others wait and reuse it.
    """
    root = Path(data.dataset)
    if _prepared(root, data):
        return root
    if data.source != "synth":
        raise DatasetError(f"{root}: no prepared dataset there; build it with `kws-prep` first")

    root.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root.parent / f".{root.name}.lock"):
        if not _prepared(root, data):  # else built while this process waited
            build_synth(root, _synth_config(data, SynthConfig), progress=progress)
    return root


def _prepared(root: Path, data: DataConfig) -> bool:
    """Whether ``root`` holds a prepared dataset (checked against ``data``'s synth settings)."""
    if not ((root / "manifest.csv").is_file() and (root / "splits.json").is_file()):
        return False
    if data.source == "synth":
        _check_synth_settings(root, data)
    return True


def _synth_config(data: DataConfig, cls):
    words = tuple(load_words_file(data.synth_words_file)) if data.synth_words_file else None
    return cls(n_words=data.synth_words, n_speakers=data.synth_speakers, seed=data.synth_seed,
               words=words, flite_speakers=data.synth_flite_speakers)


def _check_synth_settings(root: Path, data: DataConfig) -> None:
    report = root / "report.json"
    if not report.is_file():
        return
    info = json.loads(report.read_text()).get("synth")
    if not info:
        return
    flite, festival = info.get("flite_speakers", 0), info.get("festival_speakers", 0)
    made = {"words": len(info["words"]), "speakers": len(info["speakers"]) - flite - festival,
            "flite_speakers": flite, "festival_speakers": festival, "seed": info["seed"]}
    want = {"words": data.synth_words, "speakers": data.synth_speakers,
            "flite_speakers": data.synth_flite_speakers, "festival_speakers": 0,  # Festival: removed
            "seed": data.synth_seed}
    differ = {k: (made[k], v) for k, v in want.items() if made[k] != v}
    if not differ:
        if sorted(info["words"]) != _synth_config(data, SynthConfig).vocabulary():
            differ = {"words": "another vocabulary (data.synth_words_file)"}
    if differ:
        raise DatasetError(
            f"{root}: built with other synth settings {differ} (found, wanted); "
            "choose another data.dataset folder or delete this one"
        )


def prepare_data(cfg: ExperimentConfig, progress: bool = True) -> ExperimentData:
    """Build (if needed) the dataset and caches of ``cfg`` and open them memory-mapped."""
    root = ensure_dataset(cfg.data, progress=progress)
    return open_data(root, cfg.features, cfg.augment, cfg.data.speaker_disjoint, progress=progress)


def open_eval_data(cfg, data_dir=None, speaker_disjoint: bool = False, progress: bool = True):
    """The dataset to score a run on: its own (``data_dir=None``) or any prepared folder,
    through the run's own front end, without augmentation."""
    root = ensure_dataset(cfg.data, progress=progress) if data_dir is None else data_dir
    return open_data(root, cfg.features, None, speaker_disjoint, progress=progress)
