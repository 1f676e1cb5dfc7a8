"""Encoders: the registry (:mod:`kws_proto.encoders.registry`) and the registered encoders.

Importing this package registers ``conv4`` (the design's Sequential encoder), ``protores`` (the
dilated residual encoder) and ``ensemble`` (copies of one of them side by side).
"""

from __future__ import annotations

from kws_proto.encoders import conv4, ensemble, protores  # noqa: F401  (they register themselves)
from kws_proto.encoders.registry import (ENCODERS, build_encoder, complete_params, encoder_defaults,
                                         encoder_names)

__all__ = ["ENCODERS", "build_encoder", "complete_params", "encoder_defaults", "encoder_names"]
