"""The frozen pretrained embeddings a spotter or a fusion member can be named by.

``FROZEN`` maps a model name to its embedder class: ``"gse"``, the Google speech embedding
(:mod:`kws_proto.spot.gse`), ``"gse-head"``, the package's trained head on it
(:mod:`kws_proto.spot.gse_head`), and ``"ewn"``, EfficientWord-Net's (:mod:`kws_proto.spot.ewn`).
Each class takes ``backend`` and has ``features``, ``fingerprint``, ``embedding_dim``,
``backend``, ``encoder`` and ``model_dir``, so the spotter and :mod:`kws_proto.spot.fusion`
treat them alike.
"""

from __future__ import annotations

from kws_proto.spot.ewn import NAME as EWN, EWNEmbedder
from kws_proto.spot.gse import NAME as GSE, GSEEmbedder
from kws_proto.spot.gse_head import NAME as GSE_HEAD, GSEHeadEmbedder

FROZEN = {GSE: GSEEmbedder, GSE_HEAD: GSEHeadEmbedder, EWN: EWNEmbedder}


def is_frozen(model) -> bool:
    """Whether ``model`` names a frozen embedding of :data:`FROZEN`."""
    return str(model) in FROZEN


def frozen_embedder(model, backend: str | None = None):
    """The embedder of frozen embedding ``model`` on ``backend``."""
    return FROZEN[str(model)](backend)
