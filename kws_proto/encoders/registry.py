"""The encoder registry: comparing encoders is changing one word, ``build_encoder("protores", ...)``.

Every encoder maps a batch of MFCC ``x [shape=(batch, frames, n_mfcc)]`` to embeddings
``[shape=(batch, dim)]`` and does its own reshape to its layout as its first layer.  An encoder
module registers its builder with :func:`register`; the builder's keyword arguments and their
defaults *are* the encoder's parameters (:func:`encoder_defaults`).  No TensorFlow import here:
builders import Keras when called, so the registry is cheap to use from ``--help`` and configs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from kws_proto.encoders.params import input_shape_2d
from kws_proto.errors import ConfigError

#: name -> builder ``f(input_shape, **params) -> keras.Model``
ENCODERS: dict[str, Callable] = {}
#: name -> ``f(full_params) -> full_params``, run after the defaults are filled in
COMPLETERS: dict[str, Callable[[dict], dict]] = {}


def register(name: str, complete: Callable[[dict], dict] | None = None):
    """Decorator: register an encoder builder under ``name`` (and a parameter completer)."""
    def deco(builder: Callable) -> Callable:
        ENCODERS[name] = builder
        if complete is not None:
            COMPLETERS[name] = complete
        return builder
    return deco


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
    complete = COMPLETERS.get(name)
    return complete(full) if complete else full
