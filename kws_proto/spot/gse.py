"""The frozen Google speech embedding as the spotter's embedder: ``KeywordSpotter.from_model("gse")``.

The peer a user would pick instead of training anything (:mod:`kws_proto.model.gse`): each
1 s window (the default front end's clip: 16 kHz, the loudest second of a longer recording) is
the maximum of its 775 ms windows' 96-d embeddings.  Enrolment, classification, detection and
``spot-eval`` then run the package's own decision rule on it, so it is compared with the
trained encoders on identical trials.  Banks record the SHA-256 of its two model files as the
weights fingerprint.

Its two TFLite files run in the interpreter the spotter's backend names, chosen as for a
trained run (:func:`~kws_proto.spot.backends.resolve_backend`: ``backend=`` or
``$KWS_PROTO_BACKEND``; ``auto``: LiteRT when ``ai_edge_litert`` is installed, else
TensorFlow's), so with LiteRT enrolment, classification and detection import no TensorFlow.
Either interpreter gives the same embeddings to float32 rounding, and the same fingerprint:
banks made either way are interchangeable.
"""

from __future__ import annotations

import hashlib

import numpy as np

from kws_proto.audio.features import FeatureConfig
from kws_proto.model.gse import DIM, gse_embed_clips, model_dir, model_info
from kws_proto.spot.backends import resolve_backend

NAME = "gse"


class GSEEmbedder:
    """``__call__(audio [n, num_samples] float32 at 16 kHz) -> [n, 96]``; the extra must be
    installed (:class:`~kws_proto.model.gse.GSEUnavailableError` says how otherwise).

    ``backend`` (``"auto"``, ``"tf"``, ``"lite"`` or None: :func:`resolve_backend`) picks the
    interpreter, recorded as :attr:`interpreter`; it is opened on the first call.
    """

    backend = NAME
    embedding_dim = DIM
    features = FeatureConfig()
    encoder = "google-speech-embedding"

    def __init__(self, backend: str | None = None):
        self.model_dir = model_dir()
        self.interpreter = resolve_backend(backend)
        digests = model_info()["sha256"]
        self.fingerprint = hashlib.sha256(
            "".join(f"{k}:{v};" for k, v in sorted(digests.items())).encode()).hexdigest()

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return gse_embed_clips(np.asarray(audio, dtype=np.float32), backend=self.interpreter)
