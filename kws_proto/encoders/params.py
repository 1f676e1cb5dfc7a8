"""Validation of encoder parameters: every bad value raises :class:`ConfigError` naming it.

Kept free of TensorFlow so that the registry (and ``--help``) stays import-light.
"""

from __future__ import annotations

from collections.abc import Sequence

from kws_proto.errors import ConfigError


def positive_int(name: str, value: object) -> int:
    """``value`` as an ``int`` >= 1, or a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return int(value)


def positive_ints(name: str, value: object) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (a YAML list is accepted) as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ConfigError(f"{name}={value!r} must be a non-empty list of positive integers")
    try:
        return tuple(positive_int(name, v) for v in value)
    except ConfigError:
        raise ConfigError(
            f"{name}={value!r} must be a non-empty list of positive integers"
        ) from None


def choice(name: str, value: object, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else a :class:`ConfigError` listing them."""
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")
    return str(value)


def input_shape_2d(value: object) -> tuple[int, int]:
    """``(frames, n_mfcc)`` as a tuple of two positive ints."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"input_shape={value!r} must be (frames, n_mfcc)")
    frames, n_mfcc = value
    return positive_int("input_shape[0] (frames)", frames), positive_int(
        "input_shape[1] (n_mfcc)", n_mfcc
    )
