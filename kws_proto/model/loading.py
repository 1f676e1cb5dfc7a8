"""Building a prototypical network from a config, and saving / loading its encoder weights."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from kws_proto.config import ExperimentConfig
from kws_proto.encoders import build_encoder
from kws_proto.errors import CheckpointError
from kws_proto.model.fusion import is_fusion, load_fusion
from kws_proto.model.head import read_head, with_head
from kws_proto.model.pretrained import resolve_model
from kws_proto.model.runs import RunDir
from kws_proto.util.atomic import atomic_path


def build_network(cfg: ExperimentConfig, encoder=None):
    """The (untrained) :class:`PrototypicalNetwork` a config describes, built and ready to call
    (around ``encoder`` instead, when given); its member blocks are the config's
    ``model.groups``."""
    from kws_proto.model.protonet import PrototypicalNetwork  # lazy: TensorFlow

    if encoder is None:
        encoder = build_encoder(cfg.model.encoder, cfg.features.shape, **cfg.model.params)
    return PrototypicalNetwork(encoder, groups=cfg.model.groups)


def save_weights(model, path: str | os.PathLike) -> None:
    """Save ``model``'s weights to ``path`` (``*.weights.h5``) atomically: write aside, rename."""
    with atomic_path(path) as tmp:  # the sibling keeps the suffix Keras insists on
        model.save_weights(tmp)


def load_run_network(run_dir: str | os.PathLike, head: bool = True):
    """``(config, network)`` of a finished (or checkpointed) run, with its best encoder weights.

    ``run_dir`` may also name a shipped run (``"protores_synth"``,
    :mod:`kws_proto.model.pretrained`); a fused model (``"default"``, a ``kws-proto fuse``
    folder) has no network of its own and is refused, naming its members.  When the run's config asks for an embedding head
    (``head.kind`` other than ``none``) and ``head`` is True, the network's encoder is the
    encoder followed by the head fitted into ``RUN/head.npz`` (:mod:`kws_proto.model.head`);
    ``head=False`` gives the bare encoder, as trained.
    """
    if is_fusion(run_dir):
        members = ", ".join(m.model for m in load_fusion(run_dir).members)
        raise CheckpointError(
            f"{run_dir}: a fused model (members {members}) has no network of its own; name a "
            "trained member instead (the shipped one: protores_synth)")
    run = RunDir(resolve_model(run_dir))
    cfg = run.read_config()
    if not run.best_weights.is_file():
        raise CheckpointError(f"{run.root}: no {run.best_weights.name}; has training validated once?")
    net = build_network(cfg)
    try:
        net.encoder.load_weights(run.best_weights)
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{run.best_weights}: does not match the run's encoder ({e})") from e
    if head and cfg.head.kind != "none":
        centre, _ = read_head(run.head_path)
        net = build_network(cfg, with_head(net.encoder, centre, cfg.model.groups))
    return cfg, net


def weights_fingerprint(model) -> str:
    """Hex SHA-256 of a model's weight values (shapes, dtypes and bytes, in order).

    Unlike a hash of the ``.weights.h5`` file it does not change when the same weights are saved
    again, and it covers the BatchNorm moving averages that ``training=False`` uses.
    """
    h = hashlib.sha256()
    for v in model.weights:
        w = np.ascontiguousarray(v.numpy())
        h.update(f"{w.dtype.str}{w.shape}".encode())
        h.update(w.tobytes())
    return h.hexdigest()
