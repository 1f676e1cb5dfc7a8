"""The run's episode objective, picked once from its config.

Every objective has one signature, ``objective(support, query, tables) -> (loss, accuracy)``,
the trainable variables it steps (``trainable_variables``) and what the checkpoint holds of it
beside the network (``checkpointed``):

- :class:`~kws_proto.model.episode_loss.OwnLoss`: the network's own episode loss;
- :class:`~kws_proto.model.beside.BesideLoss` (``beside.member``): half of it the fused model's
  loss beside a frozen embedding;
- :class:`~kws_proto.model.rejection.RejectionLoss` (``openset.loss``): part of it the rejection
  of the episode's unknown words.
"""

from __future__ import annotations

from kws_proto.config import ExperimentConfig
from kws_proto.model.beside import BesideLoss
from kws_proto.model.episode_loss import OwnLoss
from kws_proto.model.protonet import PrototypicalNetwork
from kws_proto.model.rejection import RejectionLoss


def make_objective(cfg: ExperimentConfig, net: PrototypicalNetwork):
    """The objective ``cfg`` trains ``net`` with (the config refuses combining the two extra
    terms).  Build it in the strategy's scope: its extra terms hold variables."""
    if cfg.beside.member:
        return BesideLoss(net, cfg.beside)
    if cfg.openset.loss:
        return RejectionLoss(net, cfg.openset)
    return OwnLoss(net)
