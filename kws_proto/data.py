"""Everything a run reads from its dataset: manifest, split, caches, noise, episodes, tensors.

:func:`prepare_data` turns the ``data`` / ``features`` / ``augment`` sections of a config into an
:class:`ExperimentData`; training and evaluation ask it for samplers, fixed episodes and
``tf.data`` pipelines, so no other module touches the dataset folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws_proto.augment import AugmentConfig, load_noise
from kws_proto.cache import feature_cache, waveform_cache
from kws_proto.config import DataConfig, ExperimentConfig
from kws_proto.dataset import Manifest, Splits, load_manifest, load_splits, noise_files
from kws_proto.episodes import EpisodeSampler, fixed_episodes
from kws_proto.errors import DatasetError
from kws_proto.features import FeatureConfig


def ensure_dataset(data: DataConfig, progress: bool = True) -> Path:
    """The dataset folder of ``data``, synthesising the built-in corpus first when asked and missing.

    A synthesised folder remembers its settings (``report.json``); asking for other settings in
    the same folder is a :class:`DatasetError` rather than a silent reuse.
    """
    root = Path(data.dataset)
    if (root / "manifest.csv").is_file() and (root / "splits.json").is_file():
        if data.source == "synth":
            _check_synth_settings(root, data)
        return root
    if data.source != "synth":
        raise DatasetError(f"{root}: no prepared dataset there; build it with `kws-prep` first")
    from data_prep.synth import SynthConfig, build_synth

    build_synth(root, _synth_config(data, SynthConfig), progress=progress)
    return root


def _synth_config(data: DataConfig, cls):
    from data_prep.words import load_words_file

    words = tuple(load_words_file(data.synth_words_file)) if data.synth_words_file else None
    return cls(n_words=data.synth_words, n_speakers=data.synth_speakers, seed=data.synth_seed,
               words=words, flite_speakers=data.synth_flite_speakers,
               festival_speakers=data.synth_festival_speakers,
               festival_voices=tuple(data.synth_festival_voices) or None)


def _check_synth_settings(root: Path, data: DataConfig) -> None:
    report = root / "report.json"
    if not report.is_file():
        return
    info = json.loads(report.read_text()).get("synth")
    if not info:
        return
    from data_prep.festival import check_voices

    flite, festival = info.get("flite_speakers", 0), info.get("festival_speakers", 0)
    made = {"words": len(info["words"]), "speakers": len(info["speakers"]) - flite - festival,
            "flite_speakers": flite, "festival_speakers": festival,
            "festival_voices": info.get("festival_voices", []), "seed": info["seed"]}
    want = {"words": data.synth_words, "speakers": data.synth_speakers,
            "flite_speakers": data.synth_flite_speakers, "festival_speakers": data.synth_festival_speakers,
            "festival_voices": list(check_voices(data.synth_festival_voices)) if data.synth_festival_speakers else [],
            "seed": data.synth_seed}
    differ = {k: (made[k], v) for k, v in want.items() if made[k] != v}
    if not differ:
        from data_prep.synth import SynthConfig

        if sorted(info["words"]) != _synth_config(data, SynthConfig).vocabulary():
            differ = {"words": "another vocabulary (data.synth_words_file)"}
    if differ:
        raise DatasetError(
            f"{root}: built with other synth settings {differ} (found, wanted); "
            "choose another data.dataset folder or delete this one"
        )


@dataclass
class ExperimentData:
    """A prepared dataset seen through one experiment's front end.

    Attributes
    ----------
    manifest : Manifest
    splits : Splits
    feature_config : FeatureConfig
    features : np.ndarray [shape=(n_clips, frames, n_mfcc)]
        Un-augmented features (memmap), used for validation, evaluation and plain training.
    waveforms : np.ndarray [shape=(n_clips, num_samples)] or None
        Present when augmentation is on.
    noise : np.ndarray [shape=(m,)]
        The dataset's background noise, joined (may be empty).
    augment : AugmentConfig
    speaker_disjoint : bool
    """

    manifest: Manifest
    splits: Splits
    feature_config: FeatureConfig
    features: np.ndarray
    waveforms: np.ndarray | None
    noise: np.ndarray
    augment: AugmentConfig
    speaker_disjoint: bool = False

    def sampler(self, split: str, n_way: int, k_shot: int, n_query: int, seed: int,
                unknown: bool = False, silence: bool = False) -> EpisodeSampler:
        """Episodes over the classes of ``split`` ("train", "validation", "test"), optionally
        with the open-set extras: the split's ``unknown`` pool as one class, and silence."""
        if unknown and not self.splits.unknown:
            raise DatasetError(f"{self.manifest.root}: episodes.unknown needs an 'unknown' pool in "
                               "splits.json (e.g. `kws-prep split --protocol parnami`)")
        return EpisodeSampler(
            self.manifest, self.splits.classes(split), n_way, k_shot, n_query, seed=seed,
            speaker_disjoint=self.speaker_disjoint,
            unknown_classes=self.splits.unknown if unknown else (), silence=silence,
        )

    def fixed_episodes(self, split: str, n_way: int, k_shot: int, n_query: int, n: int, seed: int):
        """``n`` episodes drawn once from ``seed``: the same for every model scored on them."""
        return fixed_episodes(self.sampler(split, n_way, k_shot, n_query, seed), n)

    def train_dataset(self, sampler: EpisodeSampler, start: int = 0):
        """Endless prefetched ``(support, query)`` tensors of ``sampler``'s episodes from ``start``."""
        from kws_proto.pipeline import EpisodePipeline

        pipe = EpisodePipeline(
            self.feature_config, features=self.features, waveforms=self.waveforms,
            noise=self.noise, augment=self.augment, seed=sampler.seed,
        )
        return pipe.dataset(sampler, start=start)

    def write_splits(self, path: str | Path) -> None:
        """Record the class split in a run directory."""
        shutil.copyfile(self.manifest.root / "splits.json", path)


def prepare_data(cfg: ExperimentConfig, progress: bool = True) -> ExperimentData:
    """Build (if needed) the dataset and caches of ``cfg`` and open them memory-mapped."""
    root = ensure_dataset(cfg.data, progress=progress)
    return open_data(root, cfg.features, cfg.augment, cfg.data.speaker_disjoint, progress=progress)


def open_data(root, feature_config: FeatureConfig, augment: AugmentConfig | None = None,
              speaker_disjoint: bool = False, progress: bool = True) -> ExperimentData:
    """An :class:`ExperimentData` over any prepared dataset folder (caches built on first use)."""
    augment = augment or AugmentConfig(enabled=False)
    manifest = load_manifest(root)
    splits = load_splits(root) if (Path(root) / "splits.json").is_file() else Splits((), (), tuple(manifest.keywords))
    features = feature_cache(manifest, feature_config, progress=progress)
    waves = waveform_cache(manifest, feature_config, progress=progress) if augment.enabled else None
    noise = load_noise(noise_files(root), sr=feature_config.sample_rate)
    return ExperimentData(manifest, splits, feature_config, features, waves, noise, augment,
                          speaker_disjoint)
