"""Score EfficientWord-Net's embedding (:mod:`kws_proto.model.ewn`) on the project's fixed episodes.

``kws-proto eval ewn --data DIR ...`` goes through the same episodes and nearest-prototype rule as
``kws-proto eval default`` and ``eval gse`` (:mod:`kws_proto.eval.frozen`); only the table differs:

``ewn``
    every clip as the project's encoders see it (``FeatureConfig()``: 16 kHz, the loudest 1 s),
    centred between zeros in the model's 1.5 s window; what the spotter and a fusion member embed.
``ewn-1.5s``
    the loudest 1.5 s of every recording (centred between zeros when shorter): the model's whole
    window of context.

Both tables (:func:`kws_proto.model.ewn.crop_table`) are cached in ``DIR/.cache/ewn-<digest>.npy``.
"""

from __future__ import annotations

import numpy as np

from kws_proto.audio.features import FeatureConfig
from kws_proto.data.dataset import Manifest
from kws_proto.model.ewn import WINDOW_SECONDS, EWNUnavailableError, crop_table, model_file

EWN_MODELS = {
    "ewn": "EfficientWord-Net's embedding of the project's 1 s crop, centred in its 1.5 s window",
    "ewn-1.5s": "EfficientWord-Net's embedding of the loudest 1.5 s of each recording",
}
CONFIGS = {"ewn": FeatureConfig(), "ewn-1.5s": FeatureConfig(clip_seconds=WINDOW_SECONDS)}


def available() -> bool:
    """Whether EfficientWord-Net's wheel (with its ONNX model) is installed."""
    try:
        model_file()
    except EWNUnavailableError:
        return False
    return True


def ewn_table(name: str, manifest: Manifest, progress: bool = True, rows=None,
              memo: dict | None = None) -> np.ndarray:
    """``[n_clips, 2048]``: the embedding table of EWN variant ``name`` (see :data:`EWN_MODELS`);
    ``rows``/``memo``: only the rows needed when they are few
    (:func:`kws_proto.model.ewn.crop_table`)."""
    if name not in CONFIGS:
        raise ValueError(f"{name!r} is not one of {sorted(EWN_MODELS)}")
    return np.asarray(crop_table(manifest, CONFIGS[name], progress=progress, rows=rows, memo=memo))
