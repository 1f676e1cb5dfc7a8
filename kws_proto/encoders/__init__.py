"""Encoder registry: comparing encoders is changing one word, ``build_encoder("protores", ...)``.

Every encoder maps a batch of MFCC ``x [shape=(batch, frames, n_mfcc)]`` to embeddings
``[shape=(batch, dim)]`` and does its own reshape to its layout as its first layer. This module
does not import TensorFlow: the builders import Keras when called, so the registry and
:func:`encoder_defaults` are cheap to use from ``--help``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from kws_proto.encoders.conv4 import build_conv4
from kws_proto.encoders.ensemble import build_ensemble, check_member
from kws_proto.encoders.params import input_shape_2d
from kws_proto.encoders.protores import build_protores
from kws_proto.errors import ConfigError

__all__ = ["ENCODERS", "build_encoder", "complete_params", "encoder_defaults", "encoder_names"]

ENCODERS: dict[str, Callable] = {"conv4": build_conv4, "ensemble": build_ensemble,
                                 "protores": build_protores}


def encoder_names() -> list[str]:
    """Names of the registered encoders, sorted."""
    return sorted(ENCODERS)


def _builder(name: str) -> Callable:
    if name not in ENCODERS:
        raise ConfigError(f"unknown encoder {name!r}; known encoders: {', '.join(encoder_names())}")
    return ENCODERS[name]


def encoder_defaults(name: str) -> dict:
    """The parameters of encoder ``name`` with their defaults (read from the builder itself).

    Parameters
    ----------
    name : str
        A key of :data:`ENCODERS`.

    Returns
    -------
    defaults : dict
        ``{param: default}`` for every parameter but ``input_shape``; tuples stay tuples.

    Raises
    ------
    ConfigError
        If ``name`` is not registered.
    """
    params = inspect.signature(_builder(name)).parameters
    return {k: p.default for k, p in params.items() if k != "input_shape"}


def build_encoder(name: str, input_shape: tuple[int, int], **params):
    """Build the registered encoder ``name`` for MFCC of shape ``input_shape``.

    Parameters
    ----------
    name : str
        ``"conv4"``, ``"protores"`` or ``"ensemble"`` (see :data:`ENCODERS`).
    input_shape : tuple of int
        ``(frames, n_mfcc)`` of one clip, e.g. ``(51, 40)``.
    **params
        Encoder parameters; missing ones take :func:`encoder_defaults`. Lists are accepted
        wherever a tuple is expected (YAML configs).

    Returns
    -------
    encoder : keras.Model
        Maps ``x [shape=(batch, frames, n_mfcc)]`` to ``[shape=(batch, dim)]``.

    Raises
    ------
    ConfigError
        Unknown ``name`` (the message lists the known ones), unknown parameter names (named,
        with the accepted ones), or an invalid value (named).
    """
    return _builder(name)(input_shape_2d(input_shape), **complete_params(name, params))


def complete_params(name: str, params: dict) -> dict:
    """``params`` of encoder ``name`` completed with :func:`encoder_defaults`.

    Raises
    ------
    ConfigError
        Unknown ``name`` or unknown parameter names (named, with the accepted ones).
    """
    defaults = encoder_defaults(name)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for encoder {name!r}; "
            f"accepted: {', '.join(defaults)}"
        )
    full = {**defaults, **params}
    if name == "ensemble":  # record the members' every parameter too
        check_member(full["member"], full["member_params"])
        full["member_params"] = {k: list(v) if isinstance(v, tuple) else v  # YAML-friendly
                                 for k, v in complete_params(full["member"],
                                                             full["member_params"] or {}).items()}
    return full
