"""The frozen Google speech embedding as the spotter's embedder: ``KeywordSpotter.from_model("gse")``.

The peer a user would pick instead of training anything (:mod:`kws_proto.model.gse`): each
1 s window (the default front end's clip: 16 kHz, the loudest second of a longer recording) is
the maximum of its 775 ms windows' 96-d embeddings.  Enrolment, classification, detection and
``spot-eval`` then run the package's own decision rule on it, so it is compared with the
trained encoders on identical trials.  Banks record the SHA-256 of its two model files as the
weights fingerprint.
"""

from __future__ import annotations

import hashlib

import numpy as np

from kws_proto.audio.features import FeatureConfig
from kws_proto.model.gse import DIM, gse_embed_clips, model_dir, model_info

NAME = "gse"


class GSEEmbedder:
    """``__call__(audio [n, num_samples] float32 at 16 kHz) -> [n, 96]``; the extra must be
    installed (:class:`~kws_proto.model.gse.GSEUnavailableError` says how otherwise)."""

    backend = NAME
    embedding_dim = DIM
    features = FeatureConfig()
    encoder = "google-speech-embedding"

    def __init__(self):
        self.model_dir = model_dir()
        digests = model_info()["sha256"]
        self.fingerprint = hashlib.sha256(
            "".join(f"{k}:{v};" for k, v in sorted(digests.items())).encode()).hexdigest()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return gse_embed_clips(np.asarray(audio, dtype=np.float32))
