"""The trained head on the Google speech embedding as the spotter's embedder: ``from_model("gse-head")``.

Each 1 s window of the default front end (16 kHz, the loudest second of a longer recording) goes
through the speech embedding's two TFLite files (:mod:`kws_proto.spot.gse`'s interpreter choice)
to its three 96-d window outputs, then through the head the package ships
(:mod:`kws_proto.model.gse_head`, NumPy) to a unit-length vector.  Banks record a fingerprint of
both: the speech embedding's model files and the head's weights.  As a member of the fused
``default`` it sits beside ``gse`` and the trained encoder.
"""

from __future__ import annotations

import hashlib

import numpy as np

from kws_proto.audio.features import FeatureConfig
from kws_proto.model.gse_head import SHIPPED_DIR, gse_windows, shipped_head
from kws_proto.spot.gse import GSEEmbedder

NAME = "gse-head"


class GSEHeadEmbedder:
    """``__call__(audio [n, 16000] float32 at 16 kHz) -> [n, dim]``; needs the ``gse`` extra
    (:class:`~kws_proto.model.gse.GSEUnavailableError` says how otherwise) and the shipped head."""

    backend = NAME
    features = FeatureConfig()
    encoder = "google-speech-embedding+head"

    def __init__(self, backend: str | None = None):
        gse = GSEEmbedder(backend)
        self.head = shipped_head()
        self.interpreter = gse.interpreter
        self.model_dir = SHIPPED_DIR
        self.embedding_dim = self.head.dim
        self.fingerprint = hashlib.sha256(
            f"{gse.fingerprint};{self.head.digest}".encode()).hexdigest()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        # batches of 64, as gse's embed_clips cuts them: inside a fused call the speech
        # embedding hands this member the windows it computed for gse (remember_windows)
        out = [self.head(gse_windows(audio[i:i + 64], backend=self.interpreter))
               for i in range(0, len(audio), 64)]
        return np.concatenate(out) if out else np.zeros((0, self.embedding_dim), np.float32)
