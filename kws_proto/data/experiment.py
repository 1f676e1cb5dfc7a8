"""Everything a run reads from its dataset: manifest, split, caches, noise, episodes, tensors.

:func:`open_data` opens a prepared dataset folder through a config's ``features`` / ``augment``
sections as an :class:`ExperimentData`; training and evaluation ask it for samplers, fixed
episodes and ``tf.data`` pipelines, so no other module touches the dataset folder.  Building the
built-in corpus on demand is :mod:`data_prep.builtin`'s job.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws_proto.audio.augment import AugmentConfig, load_noise
from kws_proto.audio.features import FeatureConfig
from kws_proto.data.cache import feature_cache, waveform_cache
from kws_proto.data.dataset import Manifest, Splits, load_manifest, load_splits, noise_files
from kws_proto.data.episodes import EpisodeSampler, fixed_episodes
from kws_proto.errors import DatasetError


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

    def train_dataset(self, sampler: EpisodeSampler, start: int = 0, every: int = 1,
                      offsets=(0,), tables: dict | None = None):
        """Endless prefetched ``(support, query)`` tensors of ``sampler``'s episodes from
        ``start`` (only those ``i`` with ``i % every`` in ``offsets``: a worker's shard), plus
        ``{name: (support_rows, query_rows)}`` of each per-clip table in ``tables``
        (:class:`~kws_proto.data.pipeline.EpisodePipeline`)."""
        from kws_proto.data.pipeline import EpisodePipeline  # lazy: TensorFlow

        pipe = EpisodePipeline(
            self.feature_config, features=self.features, waveforms=self.waveforms,
            noise=self.noise, augment=self.augment, seed=sampler.seed, tables=tables,
        )
        return pipe.dataset(sampler, start=start, every=every, offsets=offsets)

    def write_splits(self, path: str | Path) -> None:
        """Record the class split in a run directory."""
        shutil.copyfile(self.manifest.root / "splits.json", path)


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
