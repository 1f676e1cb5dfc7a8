"""EfficientWord-Net's frozen embedding as the spotter's embedder: ``KeywordSpotter.from_model("ewn")``.

The second peer a user could pick instead of training anything (:mod:`kws_proto.model.ewn`): each
1 s window of the default front end (16 kHz, the loudest second of a longer recording) is centred
in the model's 1.5 s window and embedded to a unit 2048-d vector by the package's own ONNX
session.  Enrolment, classification, detection and ``spot-eval`` then run the package's own
decision rule on it (squared Euclidean distance, ``2 - 2 cos`` on these unit vectors), so it is
compared with the trained encoders and the Google speech embedding on identical trials; as a
fusion member (``kws-proto fuse default gse ewn``) it is centred and scaled like any other.
Banks record the SHA-256 of its ONNX file as the weights fingerprint.  It always runs in ONNX
Runtime: the spotter's backend choice does not apply to it.
"""

from __future__ import annotations

import numpy as np

from kws_proto.audio.features import FeatureConfig
from kws_proto.model.ewn import DIM, ewn_embed_clips, model_file, model_info

NAME = "ewn"


class EWNEmbedder:
    """``__call__(audio [n, num_samples] float32 at 16 kHz) -> [n, 2048]``; the wheel must be
    installed (:class:`~kws_proto.model.ewn.EWNUnavailableError` says how otherwise).

    ``backend`` is accepted like every embedder's and ignored (ONNX Runtime runs the model).
    """

    backend = NAME
    embedding_dim = DIM
    features = FeatureConfig()
    encoder = "efficientword-net"

    def __init__(self, backend: str | None = None):
        self.model_dir = model_file().parent
        self.interpreter = "onnxruntime"
        self.fingerprint = model_info()["sha256"]

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return ewn_embed_clips(np.asarray(audio, dtype=np.float32))
