"""Frozen dataclasses to and from plain mappings (YAML, JSON): the one parser of the package.

Unknown keys are a :class:`~kws_proto.errors.ConfigError` naming the key path, so a typo never
silently falls back to a default; simple types are checked and coerced (an int where a float is
expected, a list where a tuple is); nested dataclasses are parsed recursively.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from kws_proto.errors import ConfigError


def to_plain(obj):
    """Dataclasses, tuples and dicts as plain dicts and lists (YAML/JSON friendly)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def from_dict(cls, d, path: str = ""):
    """Build dataclass ``cls`` from mapping ``d``; ``path`` names it in error messages
    (``"augment"`` gives ``augment.speed=...``)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{path or cls.__name__} must be a mapping (a dict), got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown config key(s) {[where + k for k in unknown]}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in d.items():
        key = f"{path}.{name}" if path else name
        kwargs[name] = _coerce(hints[name], value, key)
    return cls(**kwargs)


def _coerce(tp, value, key: str):
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        return _coerce(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} must be a list")
        inner = args[0] if args else None
        return tuple(_coerce(inner, v, key) if inner not in (None, Ellipsis) else v for v in value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float:
        raise ConfigError(f"{key}={value!r} must be a number")
    if tp in (int, bool, str) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{key}={value!r} must be of type {tp.__name__}")
    if tp is dict and not isinstance(value, dict):
        raise ConfigError(f"{key}={value!r} must be a mapping")
    return value
