"""Score the Google speech embedding (:mod:`kws_proto.model.gse`) on the project's fixed episodes.

``kws-proto eval gse --data DIR ...`` (:mod:`kws_proto.eval.frozen`) goes through the same
:func:`~kws_proto.eval.grid.eval_episodes` (same seed, data and classes: the same episodes as
``kws-proto eval default``) and the same nearest-prototype rule
(:func:`~kws_proto.model.scoring.score_episodes`, squared Euclidean distance, the shipped
encoder's) as the project's encoders; only the embedding table differs:

``gse``
    every clip as the project's encoders see it: the waveform cache's 1 s crop
    (``FeatureConfig()``: 16 kHz, ``clip_seconds=1.0``, ``crop="loudest"``), 3 windows a clip;
    the table (:func:`kws_proto.model.gse.crop_table`) is cached in
    ``DIR/.cache/gse-<digest>.npy`` like the feature caches.
``gse-full``
    the whole recording (padded to one 775 ms window when shorter), every window of it;
    computed in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kws_proto.audio.features import FeatureConfig
from kws_proto.audio.loading import read_audio
from kws_proto.data.cache import embed_rows
from kws_proto.data.dataset import Manifest, Splits, load_manifest, load_splits
from kws_proto.model.gse import (
    DIM,
    SAMPLE_RATE,
    GSEUnavailableError,
    crop_table,
    gse_embed_clips,
    model_dir,
)

GSE_MODELS = {
    "gse": "the Google speech embedding on the project's 1 s crop (3 windows a clip)",
    "gse-full": "the Google speech embedding on the whole recording (every 775 ms window)",
}


@dataclass
class EpisodeSource:
    """What :func:`~kws_proto.eval.grid.eval_episodes` reads: the manifest and the split."""

    manifest: Manifest
    splits: Splits
    speaker_disjoint: bool = False


def open_source(root, speaker_disjoint: bool = False) -> EpisodeSource:
    manifest = load_manifest(root)
    splits = (load_splits(root) if (Path(root) / "splits.json").is_file()
              else Splits((), (), tuple(manifest.keywords)))
    return EpisodeSource(manifest, splits, speaker_disjoint)


def full_table(manifest: Manifest, progress: bool = True) -> np.ndarray:
    """``[n_clips, 96]`` GSE of every whole recording (max over all its windows)."""
    rows = [gse_embed_clips(read_audio(p, SAMPLE_RATE)[None])[0]
            for p in tqdm(manifest.paths(), unit="clip", desc="gse (whole clips)", disable=not progress)]
    return np.stack(rows).astype(np.float32)


def available() -> bool:
    """Whether the ``gse`` extra (the embedding's TFLite files) is installed."""
    try:
        model_dir()
    except GSEUnavailableError:
        return False
    return True


def rows_table(manifest: Manifest, rows, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """``[n_clips, 96]`` GSE of the 1 s crops of manifest ``rows`` only (the others zero): what a
    comparison needs of a large corpus, without embedding (or caching) all of it."""
    return embed_rows(manifest, config, np.unique(np.asarray(rows, dtype=np.int64)), {},
                      (len(manifest), DIM), "float32", gse_embed_clips, 64)


def gse_table(name: str, manifest: Manifest, progress: bool = True, rows=None,
              memo: dict | None = None) -> np.ndarray:
    """The embedding table of GSE variant ``name`` (see :data:`GSE_MODELS`); ``rows``/``memo``:
    only the rows needed when they are few (:func:`kws_proto.model.gse.crop_table`; ``gse-full``
    embeds every clip)."""
    if name == "gse":
        return np.asarray(crop_table(manifest, progress=progress, rows=rows, memo=memo))
    if name == "gse-full":
        return full_table(manifest, progress=progress)
    raise ValueError(f"{name!r} is not one of {sorted(GSE_MODELS)}")
