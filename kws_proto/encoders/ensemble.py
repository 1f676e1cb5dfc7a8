"""An ensemble encoder: several independently initialised copies of one registered encoder."""

from __future__ import annotations

from kws_proto.encoders.params import input_shape_2d, positive_int
from kws_proto.encoders.registry import ENCODERS, build_encoder, complete_params, register
from kws_proto.errors import ConfigError


def check_member(member: object, member_params: object) -> None:
    """A :class:`ConfigError` naming ``member`` unless it is a registered plain encoder, or
    naming ``member_params`` unless it is a mapping (or None)."""
    if member == "ensemble" or member not in ENCODERS:
        plain = ", ".join(sorted(n for n in ENCODERS if n != "ensemble"))
        raise ConfigError(f"member={member!r} must be one of {plain}")
    if member_params is not None and not isinstance(member_params, dict):
        raise ConfigError(f"member_params={member_params!r} must be a mapping")



def complete_member_params(full: dict) -> dict:
    """Record the members' every parameter too: ``member_params`` completed with the member's
    defaults (YAML-friendly lists for tuples)."""
    check_member(full["member"], full["member_params"])
    member = complete_params(full["member"], full["member_params"] or {})
    return {**full, "member_params": {k: list(v) if isinstance(v, tuple) else v for k, v in member.items()}}


@register("ensemble", complete=complete_member_params)
def build_ensemble(
    input_shape: tuple[int, int],
    member: str = "protores",
    members: int = 3,
    member_params: dict | None = None,
):
    """``members`` copies of encoder ``member``, their embeddings concatenated.

    Each copy has its own weights and initialisation. Trained inside a
    :class:`~kws_proto.model.protonet.PrototypicalNetwork`, every member gets its own prototypical
    loss on its own block of the embedding (the episode's loss is their mean), so the members
    learn independently from the same episodes; at test time the squared Euclidean distance of
    the concatenation is the *sum* of the members' distances, i.e. the ensemble's prototype
    scores are the members' scores added up.

    Deep ensembles: Lakshminarayanan, Pritzel & Blundell 2017, "Simple and scalable predictive
    uncertainty estimation using deep ensembles" (arXiv 1612.01474) — members differing only in
    their random initialisation already disagree usefully.

    Why: on real speech one training seed of ProtoRes can land 5-8 points below another
    (experiments/ensembles.md); averaging members removes most of that spread and
    lifts the mean.

    Parameters
    ----------
    input_shape : tuple of int
        ``(frames, n_mfcc)``.
    member : str
        A registered encoder other than ``"ensemble"``.
    members : int
        How many copies (>= 1).
    member_params : dict
        Parameters of every copy (completed with the member's defaults).

    Returns
    -------
    encoder : keras.Model
        ``x [shape=(batch, frames, n_mfcc)]`` -> ``[shape=(batch, members * d)]``, member ``i``
        in columns ``i*d : (i+1)*d``.  The member count is not stored on the model: a
        network built from a config passes ``ModelConfig.groups`` (= ``members``) to
        :class:`~kws_proto.model.protonet.PrototypicalNetwork`.
    """
    frames, n_mfcc = input_shape_2d(input_shape)
    members = positive_int("members", members)
    check_member(member, member_params)

    import keras  # lazy: TensorFlow
    from keras import layers  # lazy: TensorFlow

    inputs = keras.Input(shape=(frames, n_mfcc), name="mfcc")
    outs = []
    for i in range(members):
        net = build_encoder(member, (frames, n_mfcc), **(member_params or {}))
        net = keras.Model(net.inputs[0], net.outputs[0], name=f"member_{i}")  # unique names
        outs.append(net(inputs))
    x = outs[0] if members == 1 else layers.Concatenate(name="members")(outs)
    return keras.Model(inputs, x, name="ensemble")
