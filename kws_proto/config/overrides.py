"""Command-line overrides ``--set KEY.PATH=VALUE`` as a nested mapping, key paths checked."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterable

import yaml

from kws_proto.config.schema import ExperimentConfig
from kws_proto.errors import ConfigError

# YAML 1.1 (PyYAML) reads 1e-3 as a string; on the command line it means a number.
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_overrides(items: Iterable[str]) -> dict:
    """``["train.seed=1", "model.params.members=3"]`` as the nested mapping
    ``{"train": {"seed": 1}, "model": {"params": {"members": 3}}}``.

    Each value is read as YAML (``2``, ``0.5``, ``1e-3``, ``true``, ``[a, b]``, ``{k: v}``; text
    stays text); a later item for the same key wins.  Key paths are checked against the config's
    sections and fields (below ``model.params``, the encoder checks its parameters when the
    config is built).

    Raises
    ------
    ConfigError
        An item without ``=`` or with an empty key part (naming ``--set`` and the item), a value
        that is not YAML, or a key path that does not exist (naming it).
    """
    out: dict = {}
    for item in items:
        key, eq, text = str(item).partition("=")
        parts = key.strip().split(".")
        if not eq or not all(parts):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, "
                              "e.g. --set train.seed=1")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({e})") from None
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
            value = float(value)
        _check_key_path(parts, item)
        node = out
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    return out


def _check_key_path(parts: list[str], item: str) -> None:
    """Raise a ConfigError naming the key unless ``parts`` is a path of ExperimentConfig fields
    (free-form below a ``dict`` field such as ``model.params``)."""
    tp = ExperimentConfig
    for i, part in enumerate(parts):
        where = ".".join(parts[:i + 1])
        if not dataclasses.is_dataclass(tp):
            if tp is dict:
                return
            raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i])} is a value, not a section, "
                              f"so {where!r} does not exist")
        names = [f.name for f in dataclasses.fields(tp)]
        if part not in names:
            raise ConfigError(f"--set {item!r}: unknown config key {where!r}; known: {names}")
        tp = typing.get_type_hints(tp)[part]
